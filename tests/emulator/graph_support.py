"""Helpers shared by the Graph emulator tests: a token-signing Graph test client and Microsoft's error shape
(their fixtures, `graph` and `graph_template_dir`, live in conftest.py)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from flask import Flask
from werkzeug.test import TestResponse

from emulator import clock
from emulator.tokens import GRAPH_RESOURCE
from tests.emulator.support import ADMIN

ALL_SCOPES = ("User.Read.All User.ReadWrite.All Group.ReadWrite.All GroupMember.ReadWrite.All "
              "Organization.Read.All LicenseAssignment.ReadWrite.All Directory.Read.All")
ODATA_JSON = ("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
              "charset=utf-8")
E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
E5 = "06ebc4ee-1bb5-47dd-8120-11324bc54e06"


class Graph:
    """A test client for the emulator's Graph side with bearer tokens signed by the emulator's key ring."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.conn = app.extensions["emulator.store"].conn()
        self.tenant_id = self.conn.execute("SELECT id FROM tenants ORDER BY rowid LIMIT 1").fetchone()[0]

    def user_id(self, upn: str) -> str:
        return self.conn.execute("SELECT id FROM users WHERE lower(user_principal_name) = lower(?)",
                                 (upn,)).fetchone()[0]

    def group_id(self, name: str) -> str:
        return self.conn.execute("SELECT id FROM groups WHERE display_name = ? AND tenant_id = ?",
                                 (name, self.tenant_id)).fetchone()[0]

    def token(self, upn: str | None = ADMIN, scopes: str | None = ALL_SCOPES, *, roles: list[str] | None = None,
              lifetime: int = 3600, **extra: Any) -> str:
        now = int(clock.now())
        claims: dict[str, Any] = {"aud": GRAPH_RESOURCE, "iss": f"https://localhost/{self.tenant_id}/",
                                  "iat": now, "nbf": now, "exp": now + lifetime, "tid": self.tenant_id,
                                  "appid": str(uuid.uuid4()), "ver": "1.0"}
        if upn is not None:
            row = self.conn.execute("SELECT id, directory_roles FROM users WHERE user_principal_name = ?",
                                    (upn,)).fetchone()
            claims.update(oid=row[0], scp=scopes or "", idtyp="user")
            wids = json.loads(row[1])
            if wids:
                claims["wids"] = wids
        else:
            claims.update(roles=roles or [], idtyp="app")
        claims.update(extra)
        with self.app.app_context():
            return self.app.extensions["emulator.keys"].sign(claims)

    def call(self, method: str, path: str, *, token: str | None = None, headers: dict[str, str] | None = None,
             **kw: Any) -> TestResponse:
        hdrs = {"Authorization": f"Bearer {token or self.token()}", **(headers or {})}
        url = path if path.startswith("http") else "/v1.0" + path
        return self.client.open(url, method=method, headers=hdrs, **kw)

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> TestResponse:
        return self.call("POST", path, json=body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> TestResponse:
        return self.call("PATCH", path, json=body, **kw)

    def delete(self, path: str, **kw: Any) -> TestResponse:
        return self.call("DELETE", path, **kw)

    def walk(self, path: str, **kw: Any) -> list[dict]:
        """Follow @odata.nextLink to the end; returns every item."""
        items: list[dict] = []
        resp = self.get(path, **kw)
        while True:
            assert resp.status_code == 200, resp.get_json()
            body = resp.get_json()
            items.extend(body["value"])
            if "@odata.nextLink" not in body:
                return items
            resp = self.get(body["@odata.nextLink"], **kw)


def assert_error(resp: TestResponse, status: int, code: str, message: str | None = None) -> dict:
    """Microsoft's error shape (docs/microsoft.md §7) with the exact status, code and (optionally) message."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"}
    err = body["error"]
    assert err["code"] == code
    if message is not None:
        assert err["message"] == message
    inner = err["innerError"]
    assert set(inner) == {"date", "request-id", "client-request-id"}
    assert inner["request-id"] == resp.headers["request-id"]
    assert inner["client-request-id"] == resp.headers["client-request-id"]
    time.strptime(inner["date"], "%Y-%m-%dT%H:%M:%S")
    return err
