"""Helpers for the Office 365 operation tests: an authorized datasource, API keys, the emulator's state."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient

from core.api_keys import ApiKey
from core.extensions import db
from core.models import Datasource, User, utcnow
from emulator.server import EmulatorHandle
from office365.graph import RetryPolicy, Timeouts
from tests.conftest import csrf_token
from tests.o365_helpers import callback_path, sign_in_at_microsoft

ADMIN_UPN = "admin@contoso.example"
# Short retries so fault scenarios (429 storms, 5xx, timeouts) end in seconds.
FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.05, backoff_cap=0.2, retry_after_cap=1.0, deadline=3.0)
FAST_TIMEOUTS = Timeouts(connect=2.0, read=1.0)


@dataclass
class Tenant:
    """The emulated tenant's state, read straight from its store."""

    emulator: EmulatorHandle

    def conn(self) -> sqlite3.Connection:
        return self.emulator.app.extensions["emulator.store"].conn()

    def one(self, sql: str, *args: Any) -> Any:
        row = self.conn().execute(sql, args).fetchone()
        return row[0] if row is not None else None

    def user(self, upn: str) -> str:
        return self.one("SELECT id FROM users WHERE lower(user_principal_name) = lower(?)", upn)

    def upn(self, where: str, *args: Any) -> str:
        return self.one(f"SELECT user_principal_name FROM users WHERE {where} ORDER BY seq LIMIT 1", *args)

    def group(self, name: str) -> str:
        return self.one("SELECT id FROM groups WHERE display_name = ?", name)

    def sku(self, part: str) -> str:
        return self.one("SELECT sku_id FROM skus WHERE sku_part_number = ?", part)

    def members(self, group_id: str) -> set[str]:
        return {r[0] for r in self.conn().execute(
            "SELECT member_id FROM memberships WHERE group_id = ? AND relation = 'member'", (group_id,))}

    def licences(self, user_id: str) -> set[str]:
        return {r[0] for r in self.conn().execute("SELECT sku_id FROM user_licenses WHERE user_id = ?", (user_id,))}

    def control(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        response = requests.request(method, f"{self.emulator.base_url}/_emulator/{path}", json=body,
                                    verify=self.emulator.ca_path, timeout=10,
                                    headers={"Authorization": f"Bearer {self.emulator.config['control_key']}"})
        assert response.status_code < 300, response.text
        return response

    def fault(self, **spec: Any) -> None:
        self.control("POST", "faults", spec)


def authorized_datasource(client: FlaskClient, emulator: EmulatorHandle, app: Flask, *, name: str = "Contoso",
                          read_write: bool = True) -> Datasource:
    """Create a datasource through the admin screen and authorize it with the tenant's Global Administrator."""
    app.config["GRAPH_RETRY"], app.config["GRAPH_TIMEOUTS"] = FAST_RETRY, FAST_TIMEOUTS
    data = {"csrf_token": csrf_token(client, "/admin/datasources/new/office365"), "name": name}
    if read_write:
        data["read_write"] = "y"
    assert client.post("/admin/datasources/new/office365", data=data).status_code == 302
    datasource = db.session.scalars(db.select(Datasource).filter_by(name=name)).one()
    token = csrf_token(client, f"/admin/datasources/{datasource.id}")
    start = client.post(f"/admin/datasources/{datasource.id}/authorize", data={"csrf_token": token})
    page = client.get(callback_path(sign_in_at_microsoft(emulator, start.headers["Location"], ADMIN_UPN)))
    assert "Connection test succeeded" in page.get_data(as_text=True)
    db.session.expire_all()
    return db.session.get(Datasource, datasource.id)


def api_key_for(user: User, *, expires_in: timedelta | None = None, revoked: bool = False) -> str:
    row, key = ApiKey.issue(user, "test script", expires_at=utcnow() + expires_in if expires_in else None,
                            created_by="test")
    if revoked:
        row.revoked_at = utcnow()
    db.session.add(row)
    db.session.commit()
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def page_text(response) -> str:  # type: ignore[no-untyped-def]
    """A page's text with whitespace collapsed and the common entities decoded; never a 5xx."""
    assert response.status_code < 500, response.get_data(as_text=True)[:2000]
    text = re.sub(r"\s+", " ", response.get_data(as_text=True))
    return text.replace("&#39;", "'").replace("&#34;", '"').replace("&amp;", "&")


def post_form(client: FlaskClient, path: str, data: dict, form_page: str) -> str:
    """Post `data` with the CSRF token of `form_page`, follow redirects, and return the page's text."""
    token = csrf_token(client, form_page)
    return page_text(client.post(path, data={"csrf_token": token, **data}, follow_redirects=True))
