"""Token endpoint: client auth; code, refresh and client-credentials grants (docs/microsoft.md §1.6, §3)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import sqlite3
from dataclasses import dataclass

from flask import Response, request

from emulator import clock, tokens
from emulator.identity.blueprint import bp
from emulator.identity.common import (
    NO_STORE,
    SPECIAL_TENANTS,
    base_url,
    db,
    get_client,
    json_response,
    resolve_tenant,
    store,
    user_by_id,
)
from emulator.identity.errors import token_error
from emulator.identity.scopes import granted_scopes, missing_scopes, parse_scopes
from emulator.identity.token_response import issue_tokens
from emulator.tokens import GRAPH_RESOURCE, b64url

CODE_TTL = 600
RT_INACTIVE = 90 * 86400


@bp.post("/<tenant>/oauth2/v2.0/token")
def token(tenant: str) -> Response:
    form = request.form
    client_id, secret = form.get("client_id", ""), form.get("client_secret")
    if request.authorization and request.authorization.type == "basic":
        client_id = client_id or (request.authorization.username or "")
        secret = secret or request.authorization.password
    grant_type = form.get("grant_type", "")
    if not grant_type:
        return token_error(900144, param="grant_type")
    if not client_id:
        return token_error(900144, param="client_id")
    tenant_id, problem = _tenant_for_token(tenant)
    if problem is not None:
        return problem
    client = get_client(client_id)
    if client is None:
        return token_error(700016, client_id=client_id, tenant=tenant)
    if not secret:
        return token_error(7000218)
    if not secrets.compare_digest(secret, client["secret"]):
        return token_error(7000215, client_id=client_id)
    if grant_type == "authorization_code":
        return _grant_code(tenant_id, client)
    if grant_type == "refresh_token":
        return _grant_refresh(tenant_id, client)
    if grant_type == "client_credentials":
        return _grant_client_credentials(tenant, tenant_id, client)
    return token_error(70003, grant_type=grant_type)


def _tenant_for_token(tenant: str) -> tuple[str | None, Response | None]:
    """(tenant id or None for common/organizations, error response)."""
    if tenant.lower() in SPECIAL_TENANTS:
        return None, None
    row = resolve_tenant(tenant)
    if row is None:
        return None, token_error(90002, tenant=tenant)
    return row["id"], None


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%m/%d/%Y %H:%M:%S")


def _scope_for_token(client: dict, requested: str, allowed_graph: list[str], allowed_oidc: list[str],
                     granted: list[str]) -> tuple[list[str], list[str], Response | None]:
    """Resource + OIDC scopes a token request may get (one resource only; within what was consented).
    `/.default` at the token endpoint means every registered permission that has been granted."""
    if not requested.strip():
        return allowed_graph, allowed_oidc, None
    if any(item.lower().endswith("/.default") or item.lower() == ".default" for item in requested.split()):
        registered = {d.lower() for d in client["delegated"]}
        rest = " ".join(i for i in requested.split() if not i.lower().endswith(".default"))
        oidc, graph, other = parse_scopes(rest, client)
        graph = graph + missing_scopes([g for g in granted if g.lower() in registered], graph)
    else:
        oidc, graph, other = parse_scopes(requested, client)
    if other and graph:
        return [], [], token_error(700022, scope=requested)
    if other:
        return [], [], token_error(500011, resource=other[0].rsplit("/", 1)[0], tenant="the tenant")
    return graph, [o for o in oidc if o in allowed_oidc or o != "offline_access"], None


def _code_verifier_problem(row: sqlite3.Row) -> Response | None:
    """PKCE: the code_verifier must match the challenge the authorize request carried."""
    verifier = request.form.get("code_verifier", "")
    if not verifier:
        return token_error(900144, param="code_verifier")
    if row["code_challenge_method"] == "S256":
        expected = b64url(hashlib.sha256(verifier.encode()).digest())
    else:
        expected = verifier
    if not secrets.compare_digest(expected, row["code_challenge"]):
        return token_error(501481)
    return None


def _grant_code(tenant_id: str | None, client: dict) -> Response:
    form = request.form
    code = form.get("code", "")
    if not code:
        return token_error(900144, param="code")
    row = db().execute("SELECT * FROM auth_codes WHERE code = ?", (code,)).fetchone()
    if row is None or row["client_id"] != client["client_id"]:
        return token_error(9002313)
    if row["used"]:
        return token_error(54005)
    if clock.now() - row["created"] > CODE_TTL:
        return token_error(70008)
    if tenant_id is not None and tenant_id != row["tenant_id"]:
        return token_error(700005)
    redirect_uri = form.get("redirect_uri", "")
    if not redirect_uri:
        return token_error(900144, param="redirect_uri")
    if redirect_uri != row["redirect_uri"]:
        return token_error(500112, got=redirect_uri, expected=row["redirect_uri"])
    if row["code_challenge"]:
        problem = _code_verifier_problem(row)
        if problem is not None:
            return problem
    with store().transaction() as conn:
        updated = conn.execute("UPDATE auth_codes SET used = 1 WHERE code = ? AND used = 0", (code,)).rowcount
    if not updated:
        return token_error(54005)
    grant = _grant_for(client, row)
    if isinstance(grant, Response):
        return grant
    asked = db().execute("SELECT acrs FROM code_claims WHERE code = ?", (code,)).fetchone()
    return issue_tokens(client, grant.user, grant.graph, grant.oidc, nonce=row["nonce"], sid=row["sid"],
                        auth_time=row["auth_time"], acrs=json.loads(asked[0]) if asked else None)


def _grant_refresh(tenant_id: str | None, client: dict) -> Response:
    form = request.form
    rt = form.get("refresh_token", "")
    if not rt:
        return token_error(900144, param="refresh_token")
    row = db().execute("SELECT * FROM refresh_tokens WHERE token = ?", (rt,)).fetchone()
    if row is None:
        return token_error(9002313)
    if row["client_id"] != client["client_id"]:
        return token_error(70000)
    if tenant_id is not None and tenant_id != row["tenant_id"]:
        return token_error(700005)
    now = clock.now()
    if row["revoked"] == 1:
        return token_error(50173, issued=_iso(row["created"]), valid_from=_iso(row["created"] + 1))
    if row["revoked"] == 2:
        return token_error(65001, client_id=client["client_id"], client_name=client["name"])
    if now - row["last_used"] > RT_INACTIVE:
        return token_error(700082, issued=_iso(row["created"]))
    valid_from = _sessions_valid_from(row["user_id"])
    if valid_from is not None and row["auth_time"] < valid_from:
        return token_error(50173, issued=_iso(row["auth_time"]), valid_from=_iso(valid_from))
    # A refresh token also stops working when consent for any scope it was issued with is withdrawn.
    grant = _grant_for(client, row, whole_grant_consented=True)
    if isinstance(grant, Response):
        return grant
    oidc = grant.oidc
    if "offline_access" in grant.scopes["oidc"] and "offline_access" not in oidc:
        oidc = oidc + ["offline_access"]
    with store().transaction() as conn:
        conn.execute("UPDATE refresh_tokens SET last_used = ? WHERE token = ?", (now, rt))
    return issue_tokens(client, grant.user, grant.graph, oidc, nonce=None, sid=row["sid"], auth_time=row["auth_time"],
                        rt_graph=grant.scopes["graph"])


def _sessions_valid_from(user_id: str) -> float | None:
    """The user's signInSessionsValidFromDateTime (set by revokeSignInSessions or a password reset), if any."""
    user = user_by_id(user_id)
    if user is None:
        return None
    value = json.loads(user["extra"] or "{}").get("signInSessionsValidFromDateTime")
    if not value:
        return None
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


@dataclass(frozen=True)
class _Grant:
    user: sqlite3.Row
    scopes: dict
    graph: list[str]
    oidc: list[str]


def _grant_for(client: dict, row: sqlite3.Row, *, whole_grant_consented: bool = False) -> _Grant | Response:
    """The user and scopes a code or refresh token may still be redeemed for, or Entra's refusal.

    Both grants refuse the same way: the user is gone (50034) or disabled (50057), a scope is not allowed
    (700022/500011), or consent for it was withdrawn (65001).
    """
    user = user_by_id(row["user_id"])
    if user is None:
        return token_error(50034)
    if not user["account_enabled"]:
        return token_error(50057)
    scopes = json.loads(row["scopes"])
    have = granted_scopes(user["tenant_id"], client["client_id"], user["id"])
    graph, oidc, problem = _scope_for_token(client, request.form.get("scope", ""), scopes["graph"], scopes["oidc"],
                                            have)
    if problem is not None:
        return problem
    if missing_scopes(graph, have) or (whole_grant_consented and missing_scopes(scopes["graph"], have)):
        return token_error(65001, client_id=client["client_id"], client_name=client["name"])
    return _Grant(user, scopes, graph, oidc)


def _grant_client_credentials(tenant: str, tenant_id: str | None, client: dict) -> Response:
    if tenant.lower() == "common" or tenant.lower() == "consumers":
        return token_error(50059)
    scope = request.form.get("scope", "")
    if not scope:
        return token_error(900144, param="scope")
    items = scope.split()
    if len(items) != 1 or not items[0].lower().endswith("/.default"):
        return token_error(1002012, scope=scope)
    resource = items[0][: -len("/.default")]
    if resource.lower() not in (GRAPH_RESOURCE, "00000003-0000-0000-c000-000000000000"):
        return token_error(500011, resource=resource, tenant=tenant)
    if tenant_id is None:
        tenant_id = db().execute("SELECT id FROM tenants ORDER BY rowid LIMIT 1").fetchone()[0]
    lifetime = 3599
    body = {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
            "access_token": tokens.app_access_token(base_url(), tenant_id, client, now=int(clock.now()),
                                                    lifetime=lifetime)}
    return json_response(body, headers=NO_STORE)
