"""Shared plumbing of the Graph routes: bearer-token auth and scope checks (docs/microsoft.md §5.0, §5.10), OData
responses with Microsoft's headers, absolute nextLinks, keyset paging."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

from flask import Response, current_app, g, request

from emulator import clock, tokens
from emulator.graph.errors import GraphError, bad_request, forbidden, request_ids

ODATA_JSON = ("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
              "charset=utf-8")

# Role template ids (the `wids` claim) allowed to write through delegated permissions.
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
GROUPS_ADMIN = "fdd7a751-b60b-444a-984c-02652fe8fa1c"
LICENSE_ADMIN = "4d6ac14f-3453-41d0-bef9-a3e0c569773a"
WRITE_ROLES = frozenset({GLOBAL_ADMIN, USER_ADMIN, GROUPS_ADMIN, LICENSE_ADMIN})

_DIR_READ = {"Directory.Read.All", "Directory.ReadWrite.All"}
USER_READ = frozenset({"User.Read.All", "User.ReadWrite.All", "User.ReadBasic.All", *_DIR_READ})
USER_WRITE = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})
GROUP_READ = frozenset({"GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All",
                        "Group.ReadWrite.All", *_DIR_READ})
GROUP_CREATE = frozenset({"Group.ReadWrite.All", "Directory.ReadWrite.All", "Group.Create"})
GROUP_WRITE = frozenset({"Group.ReadWrite.All", "Directory.ReadWrite.All"})
MEMBER_WRITE = frozenset({"GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"})
ORG_READ = frozenset({"Organization.Read.All", "Organization.ReadWrite.All", *_DIR_READ})
LICENSE_READ = frozenset({"LicenseAssignment.Read.All", "LicenseAssignment.ReadWrite.All", "User.Read.All",
                          "User.ReadWrite.All", *_DIR_READ})
LICENSE_WRITE = frozenset({"LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"})
SELF_READ = frozenset({"User.Read", "User.ReadWrite", "User.ReadBasic.All"})
MEMBERSHIP_READ = USER_READ | GROUP_READ


# ---------------------------------------------------------------------------------------------- auth

def _unauthorized(message: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message, {
        "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                            'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'})


def authenticate() -> None:
    """Verify the bearer token and put its claims, tenant and caller on `g` (401 otherwise)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Access token is empty.")
    claims = tokens.verify_access_token(token)
    if claims is None:
        raw = tokens.keyring().decode(token)
        if raw is None:
            raise _unauthorized("Access token validation failure.")
        if raw.get("aud") not in (tokens.GRAPH_RESOURCE, tokens.GRAPH_APP_ID):
            raise _unauthorized("Access token validation failure. Invalid audience.")
        if not raw.get("nbf", 0) - 300 <= clock.now() < raw.get("exp", 0):
            raise _unauthorized("Access token has expired or is not yet valid.")
        raise _unauthorized("Access token validation failure.")
    tenant_id = claims.get("tid")
    if not tenant_id or db().execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)).fetchone() is None:
        raise _unauthorized("Access token validation failure. Invalid audience.")
    g.claims = claims
    g.tenant_id = tenant_id
    # Delegated tokens carry `scp`; app-only tokens carry only `roles`.
    g.caller_oid = claims.get("oid") if "scp" in claims else None


def granted() -> set[str]:
    claims = g.claims
    scopes = set((claims.get("scp") or "").split())
    roles = claims.get("roles") or []
    if isinstance(roles, list):
        scopes.update(roles)
    return scopes


def delegated() -> bool:
    return g.get("caller_oid") is not None


def _caller_roles() -> set[str]:
    wids = g.claims.get("wids")
    if isinstance(wids, list):
        return set(wids)
    row = db().execute("SELECT directory_roles FROM users WHERE id = ?", (g.caller_oid,)).fetchone()
    return set(json.loads(row[0])) if row else set()


def require(scopes: Iterable[str], *, write: bool = False, self_id: str | None = None) -> None:
    """403 unless the token holds one of `scopes` (or reads its own user with User.Read); delegated writes
    also need an admin directory role."""
    have = granted()
    ok = bool(have & set(scopes))
    if not ok and self_id is not None and delegated() and self_id == g.caller_oid:
        ok = bool(have & (SELF_READ | USER_READ | GROUP_READ))
    if not ok:
        raise forbidden()
    if write and delegated() and not (_caller_roles() & WRITE_ROLES):
        raise forbidden()


# ---------------------------------------------------------------------------------------------- request

def store() -> Any:
    return current_app.extensions["emulator.store"]


def db() -> sqlite3.Connection:
    return store().conn()


def tenant() -> str:
    return g.tenant_id


def eventual() -> bool:
    return request.headers.get("ConsistencyLevel", "").strip().lower() == "eventual"


def count_requested() -> bool:
    return request.args.get("$count", "").strip().lower() == "true"


def advanced() -> bool:
    """Advanced query parameters present: the header plus $count=true (docs/microsoft.md §5.0)."""
    return eventual() and count_requested()


def check_count_param() -> bool:
    """True when `@odata.count` should be added; `$count=true` without the header is a 400."""
    if not count_requested():
        return False
    if not eventual():
        raise bad_request("$count is not currently supported.")
    return True


def json_body() -> dict[str, Any]:
    data = request.get_json(silent=True, force=True)
    if not isinstance(data, dict):
        raise bad_request("Write requests (excluding DELETE) must contain the Content-Type header declaration.",
                          code="BadRequest") if not request.data else bad_request(
            "Invalid request body: the body must be a JSON object.", code="BadRequest")
    return data


# ---------------------------------------------------------------------------------------------- responses

def base_url() -> str:
    return request.host_url.rstrip("/")


def context_url(fragment: str) -> str:
    return f"{base_url()}/v1.0/$metadata#{fragment}"


def select_suffix(select: list[str] | None) -> str:
    return f"({','.join(select)})" if select else ""


def odata_json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = Response(json.dumps(payload, separators=(",", ":")), status=status, content_type=ODATA_JSON)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def no_content() -> Response:
    return Response(status=204)


def text_plain(text: str) -> Response:
    return Response(text, status=200, content_type="text/plain")


def add_standard_headers(resp: Response) -> Response:
    rid, crid = request_ids()
    resp.headers.setdefault("request-id", rid)
    resp.headers.setdefault("client-request-id", crid)
    resp.headers.setdefault("OData-Version", "4.0")
    resp.headers.setdefault("Cache-Control", "no-cache")
    resp.headers.setdefault("x-ms-ags-diagnostic",
                            json.dumps({"ServerInfo": {"DataCenter": "Emulator", "Slice": "E",
                                                       "Ring": "0", "ScaleUnit": "000", "RoleInstance": "EMU"}},
                                       separators=(",", ":")))
    resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return resp


_SAFE = "$,()':/@!*"


def link_with(params: dict[str, str], path: str | None = None) -> str:
    """Absolute URL on this server for `path` (default: the current one) with the given query."""
    query = urlencode(list(params.items()), quote_via=quote, safe=_SAFE)
    return f"{base_url()}{path or request.path}" + (f"?{query}" if query else "")


def next_link(skiptoken: str) -> str:
    """The current URL with its original query kept and `$skiptoken` replaced."""
    params = {k: v for k, v in request.args.items(multi=False) if k != "$skiptoken"}
    params["$skiptoken"] = skiptoken
    return link_with(params)


def collection(context: str, items: list[dict], *, next_token: str | None = None,
               count: int | None = None) -> Response:
    payload: dict[str, Any] = {"@odata.context": context}
    if count is not None:
        payload["@odata.count"] = count
    if next_token is not None:
        payload["@odata.nextLink"] = next_link(next_token)
    payload["value"] = items
    return odata_json(payload)


def project(obj: dict[str, Any], select: list[str] | None, default: Iterable[str]) -> dict[str, Any]:
    """The selected properties (in request order, missing ones as null) or the default set."""
    keys = select if select else default
    return {k: obj.get(k) for k in keys}
