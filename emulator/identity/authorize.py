"""Entra ID v2.0 blueprint: discovery, keys, authorize (sign-in + consent pages), token, logout, adminconsent.

Microsoft facts: docs/microsoft.md §1-§3.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import random
import secrets
import sqlite3
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from flask import Blueprint, Response, current_app, jsonify, make_response, redirect, render_template, request

from emulator import clock, seed, tokens
from emulator.store import Store
from emulator.tokens import GRAPH_RESOURCE, b64url, client_info, keyring, verify_access_token

bp = Blueprint("identity", __name__, static_folder="../templates/static", static_url_path="/emulator-static")

OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
GRAPH_PREFIXES = (GRAPH_RESOURCE + "/", "00000003-0000-0000-c000-000000000000/")
SPECIAL_TENANTS = ("common", "organizations", "consumers")
CONSUMERS_TID = "9188040d-6c67-4c5b-b112-36a304b66dad"
USER_CONSENTABLE_ALL = {"user.readbasic.all"}
NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
CODE_TTL = 600
RT_INACTIVE = 90 * 86400
SESSION_COOKIE = "emu_session"

# AADSTS code -> (error, HTTP status, message template, suberror)
AADSTS: dict[int, tuple[str, int, str, str | None]] = {
    700082: ("invalid_grant", 400, "The refresh token has expired due to inactivity. The token was issued on "
             "{issued} and was inactive for 90.00:00:00.", None),
    70008: ("invalid_grant", 400, "The provided authorization code or refresh token has expired due to "
            "inactivity. Send a new interactive authorization request for this user and resource.", None),
    50173: ("invalid_grant", 400, "The provided grant has expired due to it being revoked, a fresh auth token is "
            "needed. The user might have changed or reset their password. The grant was issued on '{issued}' and "
            "the TokensValidFrom date (before which tokens are not valid) for this user is '{valid_from}'.",
            "bad_token"),
    65001: ("invalid_grant", 400, "The user or administrator has not consented to use the application with ID "
            "'{client_id}' named '{client_name}'. Send an interactive authorization request for this user and "
            "resource.", "consent_required"),
    50076: ("invalid_grant", 400, "Due to a configuration change made by your administrator, or because you moved "
            "to a new location, you must use multi-factor authentication to access "
            "'00000003-0000-0000-c000-000000000000'.", "basic_action"),
    54005: ("invalid_grant", 400, "OAuth2 Authorization code was already redeemed, please retry with a new valid "
            "code or use an existing refresh token.", None),
    501481: ("invalid_grant", 400, "The Code_Verifier does not match the code_challenge supplied in the "
             "authorization request.", None),
    700005: ("invalid_grant", 400, "Provided Authorization Code is intended to use against other tenant, thus "
             "rejected.", None),
    70000: ("invalid_grant", 400, "Provided grant is invalid or malformed.", None),
    500112: ("invalid_grant", 400, "The reply address '{got}' does not match the reply address '{expected}' "
             "provided when requesting Authorization code.", None),
    9002313: ("invalid_grant", 400, "Invalid request. Request is malformed or invalid.", None),
    50057: ("invalid_grant", 400, "The user account is disabled.", None),
    50034: ("invalid_grant", 400, "The user account does not exist in the directory.", None),
    7000215: ("invalid_client", 401, "Invalid client secret provided. Ensure the secret being sent in the request "
              "is the client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
              None),
    7000218: ("invalid_request", 400, "The request body must contain the following parameter: 'client_assertion' "
              "or 'client_secret'.", None),
    700016: ("unauthorized_client", 400, "Application with identifier '{client_id}' was not found in the directory "
             "'{tenant}'. This can happen if the application has not been installed by the administrator of the "
             "tenant or consented to by any user in the tenant. You may have sent your authentication request to "
             "the wrong tenant.", None),
    70011: ("invalid_scope", 400, "The provided value for the input parameter 'scope' is not valid. The scope "
            "'{scope}' does not exist.", None),
    700022: ("invalid_scope", 400, "The provided value for the input parameter scope is not valid because it "
             "contains more than one resource. Scope {scope} is not valid.", None),
    1002012: ("invalid_scope", 400, "The provided value for scope {scope} is not valid. Client credential flows "
              "must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
              None),
    500011: ("invalid_resource", 400, "The resource principal named {resource} was not found in the tenant named "
             "{tenant}. This can happen if the application has not been installed by the administrator of the "
             "tenant or consented to by any user in the tenant.", None),
    900144: ("invalid_request", 400, "The request body must contain the following parameter: '{param}'.", None),
    70003: ("unsupported_grant_type", 400, "The app requested an unsupported grant type '{grant_type}'.", None),
    50059: ("invalid_request", 400, "No tenant-identifying information found in either the request or implied by "
            "any provided credentials.", None),
    90002: ("invalid_tenant", 400, "Tenant '{tenant}' not found. Check to make sure you have the correct tenant "
            "ID and are signing into the correct cloud. Check with your subscription administrator, this may "
            "happen if there are no active subscriptions for the tenant.", None),
    90033: ("temporarily_unavailable", 503, "A transient error has occurred. Please try again.", None),
    50196: ("temporarily_unavailable", 429, "The server terminated an operation because it encountered a client "
            "request loop. Please contact your app vendor.", None),
}


# ---------------------------------------------------------------------------------------------- helpers


def store() -> Store:
    return current_app.extensions["emulator.store"]


def db() -> sqlite3.Connection:
    return store().conn()


def base_url() -> str:
    return current_app.config.get("EMULATOR_BASE_URL") or request.host_url.rstrip("/")


def _timestamp(now: float | None = None) -> str:
    return dt.datetime.fromtimestamp(now if now is not None else clock.now(), dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%m/%d/%Y %H:%M:%S")


def error_description(code: int, message: str) -> tuple[str, dict]:
    trace, corr, ts = str(uuid.uuid4()), str(uuid.uuid4()), _timestamp()
    text = f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}"
    return text, {"timestamp": ts, "trace_id": trace, "correlation_id": corr}


def token_error(code: int, status: int | None = None, error: str | None = None, **fmt: Any) -> Response:
    """The docs/microsoft.md §1.6 error JSON with Entra's cache headers."""
    default_error, default_status, template, suberror = AADSTS[code]
    text, ids = error_description(code, template.format_map(_Default(fmt)))
    body = {"error": error or default_error, "error_description": text, "error_codes": [code], **ids,
            "error_uri": f"{base_url()}/error?code={code}"}
    if suberror:
        body["suberror"] = suberror
    response = jsonify(body)
    response.status_code = status or default_status
    response.headers.update(NO_STORE)
    return response


class _Default(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def message_page(title: str, message: str, *, code: int | None = None, status: int = 400,
                 links: list[tuple[str, str]] | None = None) -> Response:
    text = f"AADSTS{code}: {message}" if code else message
    response = make_response(render_template("message.html", title=title, message=text, code=code,
                                             links=links or [], trace_id=str(uuid.uuid4()),
                                             correlation_id=str(uuid.uuid4()), timestamp=_timestamp()), status)
    return response


def resolve_tenant(segment: str) -> sqlite3.Row | None:
    return db().execute("SELECT * FROM tenants WHERE id = ? OR domain = ?",
                        (segment.lower(), segment.lower())).fetchone()


def get_client(client_id: str) -> dict | None:
    row = db().execute("SELECT c.*, p.delegated, p.application FROM clients c LEFT JOIN client_permissions p "
                       "USING (client_id) WHERE client_id = ?", (client_id,)).fetchone()
    if row is None:
        return None
    client = dict(row)
    client["redirect_uris"] = json.loads(row["redirect_uris"])
    client["delegated"] = json.loads(row["delegated"] or "[]")
    client["application"] = json.loads(row["application"] or "[]")
    return client


def redirect_matches(registered: str, given: str) -> bool:
    """Exact match, except that http://localhost and http://127.0.0.1 registrations ignore the port."""
    if registered == given:
        return True
    r, g = urlsplit(registered), urlsplit(given)
    if r.scheme == "http" and r.hostname in ("localhost", "127.0.0.1"):
        return (g.scheme, g.hostname, g.path or "/", g.query) == (r.scheme, r.hostname, r.path or "/", r.query)
    return False


def redirect_registered(client: dict, uri: str) -> bool:
    return any(redirect_matches(reg, uri) for reg in client["redirect_uris"])


def is_admin_only(scope: str) -> bool:
    low = scope.lower()
    return low.endswith(".all") and low not in USER_CONSENTABLE_ALL


def parse_scopes(raw: str, client: dict) -> tuple[list[str], list[str], list[str]]:
    """(oidc scopes, Graph short scope names, other resources) of a space-separated scope string."""
    oidc: list[str] = []
    graph: list[str] = []
    other: list[str] = []
    for item in raw.split():
        low = item.lower()
        if low in OIDC_SCOPES:
            if low not in oidc:
                oidc.append(low)
            continue
        name = None
        for prefix in GRAPH_PREFIXES:
            if low.startswith(prefix):
                name = item[len(prefix):]
        if name is None and "/" not in item and ":" not in item:
            name = item
        if name is None:
            other.append(item)
            continue
        names = client["delegated"] if name.lower() == ".default" else [name]
        for n in names:
            if n.lower() not in {g.lower() for g in graph}:
                graph.append(n)
    return oidc, graph, other


def granted_scopes(tenant_id: str, client_id: str, user_id: str) -> list[str]:
    rows = db().execute("SELECT scopes FROM grants WHERE tenant_id = ? AND client_id = ? AND principal IN (?, '*')",
                        (tenant_id, client_id, user_id)).fetchall()
    out: list[str] = []
    for row in rows:
        for s in json.loads(row[0]):
            if s.lower() not in {o.lower() for o in out}:
                out.append(s)
    return out


def missing_scopes(wanted: list[str], have: list[str]) -> list[str]:
    low = {h.lower() for h in have}
    return [w for w in wanted if w.lower() not in low]


def add_grant(conn: sqlite3.Connection, tenant_id: str, client_id: str, principal: str, scopes: list[str]) -> None:
    row = conn.execute("SELECT scopes FROM grants WHERE tenant_id = ? AND client_id = ? AND principal = ?",
                       (tenant_id, client_id, principal)).fetchone()
    current = json.loads(row[0]) if row else []
    merged = current + missing_scopes(scopes, current)
    conn.execute("INSERT INTO grants (tenant_id, client_id, principal, scopes, created) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT (tenant_id, client_id, principal) DO UPDATE SET scopes = excluded.scopes",
                 (tenant_id, client_id, principal, json.dumps(merged), clock.now()))


def user_by_id(user_id: str) -> sqlite3.Row | None:
    return db().execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()


def user_by_upn(upn: str, tenant_id: str | None) -> sqlite3.Row | None:
    if tenant_id:
        return db().execute("SELECT * FROM users WHERE tenant_id = ? AND lower(user_principal_name) = ?",
                            (tenant_id, upn.lower())).fetchone()
    return db().execute("SELECT * FROM users WHERE lower(user_principal_name) = ?", (upn.lower(),)).fetchone()


def can_admin_consent(user: sqlite3.Row) -> bool:
    return bool(seed.CONSENT_ADMIN_ROLES.intersection(json.loads(user["directory_roles"])))


# ---------------------------------------------------------------------------------------------- discovery


def _json(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


@bp.get("/<tenant>/v2.0/.well-known/openid-configuration")
def discovery(tenant: str) -> Response:
    base = base_url()
    low = tenant.lower()
    if low in ("common", "organizations"):
        segment, issuer, region = low, f"{base}/{{tenantid}}/v2.0", None
    elif low == "consumers":
        segment, issuer, region = low, f"{base}/{CONSUMERS_TID}/v2.0", None
    else:
        row = resolve_tenant(tenant)
        if row is None:
            return token_error(90002, tenant=tenant)
        segment, issuer, region = row["id"], f"{base}/{row['id']}/v2.0", "WW"
    host = urlsplit(base).netloc
    doc = {
        "token_endpoint": f"{base}/{segment}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/{segment}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{base}/{segment}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/{segment}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/{segment}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                             "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
                             "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": f"{base}/{segment}/kerberos",
        "tenant_region_scope": region,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": host,
        "rbac_url": "https://pas.windows.net",
    }
    return _json(doc, headers={"Cache-Control": "max-age=86400, private", "Access-Control-Allow-Origin": "*"})


@bp.get("/discovery/v2.0/keys")
def jwks_common() -> Response:
    return jwks("common")


@bp.get("/<tenant>/discovery/v2.0/keys")
def jwks(tenant: str) -> Response:
    if tenant.lower() not in SPECIAL_TENANTS and resolve_tenant(tenant) is None:
        return token_error(90002, tenant=tenant)
    return _json(keyring().jwks(f"{base_url()}/{{tenantid}}/v2.0"),
                 headers={"Cache-Control": "max-age=86400, private", "Access-Control-Allow-Origin": "*"})


@bp.get("/error")
def error_info() -> Response:
    code = request.args.get("code", "")
    return message_page("Error lookup", f"Error code AADSTS{code}. See the emulator reference, section 1.6.",
                        status=200)


# ---------------------------------------------------------------------------------------------- sessions


def current_session() -> sqlite3.Row | None:
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None
    return db().execute("SELECT * FROM sessions WHERE sid = ? AND ended = 0", (sid,)).fetchone()


def new_session(user: sqlite3.Row) -> str:
    sid = str(uuid.uuid4())
    with store().transaction() as conn:
        conn.execute("INSERT INTO sessions (sid, user_id, tenant_id, created) VALUES (?, ?, ?, ?)",
                     (sid, user["id"], user["tenant_id"], clock.now()))
    return sid


def set_session_cookie(response: Response, sid: str) -> Response:
    response.set_cookie(SESSION_COOKIE, sid, path="/", secure=True, httponly=True, samesite="None")
    return response


# ---------------------------------------------------------------------------------------------- authorize


class Flow:
    """An authorize (or adminconsent) request being worked through the sign-in and consent pages."""

    def __init__(self, tenant: str, params: dict[str, str], kind: str = "authorize") -> None:
        self.tenant = tenant
        self.params = params
        self.kind = kind
        self.client: dict | None = None
        self.redirect_uri = ""
        self.tenant_row = resolve_tenant(tenant) if tenant.lower() not in SPECIAL_TENANTS else None

    @property
    def ctx(self) -> str:
        return urlencode(self.params)

    def get(self, key: str) -> str:
        return self.params.get(key, "")

    def validate(self) -> Response | None:
        """Errors shown on the page (never redirected): unknown tenant, client or redirect URI."""
        if self.tenant.lower() not in SPECIAL_TENANTS and self.tenant_row is None:
            text, _ = error_description(90002, AADSTS[90002][2].format(tenant=self.tenant))
            return message_page("Sorry, but we're having trouble signing you in.", text)
        if self.kind == "adminconsent" and self.tenant.lower() == "common":
            return message_page("Sorry, but we're having trouble signing you in.",
                                AADSTS[50059][2], code=50059)
        client_id = self.get("client_id")
        if not client_id:
            return message_page("Sorry, but we're having trouble signing you in.",
                                AADSTS[900144][2].format(param="client_id"), code=900144)
        self.client = get_client(client_id)
        if self.client is None:
            return message_page("Sorry, but we're having trouble signing you in.",
                                AADSTS[700016][2].format(client_id=client_id, tenant=self.tenant), code=700016)
        uri = self.get("redirect_uri")
        if not uri:
            if not self.client["redirect_uris"]:
                return message_page("Sorry, but we're having trouble signing you in.",
                                    "No reply address is registered for the application.", code=500113)
            uri = self.client["redirect_uris"][0]
        elif not redirect_registered(self.client, uri):
            return message_page(
                "Sorry, but we're having trouble signing you in.",
                f"The redirect URI '{uri}' specified in the request does not match the redirect URIs configured "
                f"for the application '{client_id}'. Make sure the redirect URI sent in the request matches one "
                "added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError "
                "to learn more about how to fix this.", code=50011)
        self.redirect_uri = uri
        return None

    # -- delivery to the redirect URI

    def deliver(self, fields: dict[str, str]) -> Response:
        if self.kind == "authorize" and self.get("state"):
            fields["state"] = self.get("state")
        if self.kind == "adminconsent" and self.get("state"):
            fields["state"] = self.get("state")
        mode = self.get("response_mode") or "query"
        if mode == "form_post":
            return make_response(render_template("form_post.html", action=self.redirect_uri, fields=fields))
        if mode == "fragment":
            return redirect(f"{self.redirect_uri}#{urlencode(fields)}", 302)
        sep = "&" if "?" in self.redirect_uri else "?"
        return redirect(f"{self.redirect_uri}{sep}{urlencode(fields)}", 302)

    def error(self, error: str, code: int, message: str, subcode: str | None = None) -> Response:
        text, _ = error_description(code, message)
        fields = {"admin_consent": "True"} if self.kind == "adminconsent" else {}
        fields.update({"error": error, "error_description": text})
        if subcode:
            fields["error_subcode"] = subcode
        return self.deliver(fields)


def _flow_from_request(tenant: str) -> Flow:
    if request.method == "POST" and "ctx" in request.form:
        params = dict(parse_qsl(request.form["ctx"], keep_blank_values=True))
        return Flow(tenant, params, request.form.get("kind", "authorize"))
    source = request.form if request.method == "POST" else request.args
    return Flow(tenant, {k: v for k, v in source.items()})


def _signin_page(flow: Flow, *, error: str = "", username: str = "", session_user: Any = None) -> Response:
    tenant_id = flow.tenant_row["id"] if flow.tenant_row else None
    hint = flow.get("domain_hint").lower()
    if tenant_id is None and hint:
        row = resolve_tenant(hint)
        tenant_id = row["id"] if row else None
    sql = ("SELECT id, user_principal_name, display_name, directory_roles FROM users "
           "WHERE account_enabled = 1 {} ORDER BY seq LIMIT 30")
    if tenant_id:
        users = db().execute(sql.format("AND tenant_id = ?"), (tenant_id,)).fetchall()
    else:
        users = db().execute(sql.format(""), ()).fetchall()
    people = [{"id": u["id"], "upn": u["user_principal_name"], "name": u["display_name"],
               "admin": u["directory_roles"] != "[]"} for u in users]
    title = "Sign in" if flow.kind == "authorize" else "Sign in as an administrator"
    return make_response(render_template(
        "signin.html", title=title, flow=flow, people=people, error=error,
        username=username or flow.get("login_hint"), client=flow.client, session_user=session_user,
        tenant=flow.tenant))


def _consent_page(flow: Flow, user: sqlite3.Row, scopes: list[str], *, org: bool) -> Response:
    descriptions = [{"scope": s, "admin": is_admin_only(s)} for s in scopes]
    return make_response(render_template("consent.html", title="Permissions requested", flow=flow, user=user,
                                         scopes=descriptions, client=flow.client, org_forced=org,
                                         can_org=can_admin_consent(user), tenant=flow.tenant))


@bp.route("/<tenant>/oauth2/v2.0/authorize", methods=["GET", "POST"])
def authorize(tenant: str) -> Response:
    flow = _flow_from_request(tenant)
    problem = flow.validate()
    if problem is not None:
        return problem
    return _authorize_step(flow, fresh_login=False, consented=False)


def _request_problem(flow: Flow) -> Response | None:
    """Errors that are redirected back to the app."""
    assert flow.client is not None
    response_type = flow.get("response_type")
    if not response_type:
        return flow.error("invalid_request", 900144, AADSTS[900144][2].format(param="response_type"))
    if response_type != "code":
        return flow.error("unsupported_response_type", 700054,
                          "response_type 'id_token' is not enabled for the application.")
    if flow.get("response_mode") not in ("", "query", "form_post", "fragment"):
        return flow.error("invalid_request", 900280, f"Invalid response mode: '{flow.get('response_mode')}'.")
    if not flow.get("scope").strip():
        return flow.error("invalid_request", 900144, AADSTS[900144][2].format(param="scope"))
    method = flow.get("code_challenge_method")
    if flow.get("code_challenge") and method not in ("", "S256", "plain"):
        return flow.error("invalid_request", 50148, f"Invalid code_challenge_method '{method}'. "
                          "Supported values are 'S256' and 'plain'.")
    _oidc, _graph, other = parse_scopes(flow.get("scope"), flow.client)
    if other:
        return flow.error("invalid_resource", 500011,
                          AADSTS[500011][2].format(resource=other[0].rsplit("/", 1)[0], tenant=flow.tenant))
    return None


def _session_user(flow: Flow) -> tuple[sqlite3.Row | None, sqlite3.Row | None]:
    """(session, user) when the browser's emulator session fits this request."""
    session = current_session()
    if session is None:
        return None, None
    user = user_by_id(session["user_id"])
    if user is None or not user["account_enabled"]:
        return session, None
    if flow.tenant_row is not None and user["tenant_id"] != flow.tenant_row["id"]:
        return session, None
    hint = flow.get("login_hint")
    if hint and hint.lower() != user["user_principal_name"].lower():
        return session, None
    max_age = flow.get("max_age")
    if max_age.isdigit() and clock.now() - session["created"] > int(max_age):
        return None, None  # too old: sign in again (prompt=none then gets login_required)
    return session, user


def _authorize_step(flow: Flow, *, fresh_login: bool, consented: bool, user: Any = None,
                    sid: str | None = None) -> Response:
    if flow.kind == "authorize":
        problem = _request_problem(flow)
        if problem is not None:
            return problem
    prompt = flow.get("prompt").lower()
    session = None
    if user is None:
        session, user = _session_user(flow)
        sid = session["sid"] if (session is not None and user is not None) else None
        if prompt == "none" and user is None:
            if session is None:
                return flow.error("login_required", 50058,
                                  "A silent sign-in request was sent but no user is signed in.")
            return flow.error("interaction_required", 16000, "Either multiple user identities are available for "
                              "the current request or selected account is not supported for the scenario.")
        if user is None or (not fresh_login and prompt in ("login", "select_account")) or (
                flow.kind == "adminconsent" and user is None):
            return _signin_page(flow, session_user=None)
    assert flow.client is not None and sid is not None
    if flow.kind == "adminconsent":
        if not can_admin_consent(user):
            return flow.error("access_denied", 90094, "The grant requires admin permission.")
        if not consented:
            scopes = _adminconsent_scopes(flow)
            return _consent_page(flow, user, scopes, org=True)
        return _adminconsent_done(flow, user)
    _oidc, graph, _other = parse_scopes(flow.get("scope"), flow.client)
    have = granted_scopes(user["tenant_id"], flow.client["client_id"], user["id"])
    need = missing_scopes(graph, have)
    if not consented and (need or prompt == "consent"):
        if prompt == "none":
            return flow.error("consent_required", 65001, AADSTS[65001][2].format(
                client_id=flow.client["client_id"], client_name=flow.client["name"]))
        if any(is_admin_only(s) for s in need) and not can_admin_consent(user):
            return _need_admin_page(flow)
        return _consent_page(flow, user, need or graph, org=False)
    return _issue_code(flow, user, sid, graph)


def _need_admin_page(flow: Flow) -> Response:
    text, _ = error_description(65004, "User declined to consent to access the app.")
    fields = {"error": "access_denied", "error_subcode": "cancel", "error_description": text}
    if flow.get("state"):
        fields["state"] = flow.get("state")
    sep = "&" if "?" in flow.redirect_uri else "?"
    back = f"{flow.redirect_uri}{sep}{urlencode(fields)}"
    assert flow.client is not None
    return message_page(
        "Need admin approval",
        f"{flow.client['name']} needs permission to access resources in your organization that only an admin can "
        "grant. Please ask an admin to grant permission to this app before you can use it.",
        code=90094, status=200, links=[("Return to the application without granting consent", back)])


def _issue_code(flow: Flow, user: sqlite3.Row, sid: str, graph: list[str]) -> Response:
    assert flow.client is not None
    oidc, _g, _o = parse_scopes(flow.get("scope"), flow.client)
    code = "1.AQ" + secrets.token_urlsafe(72)
    now = clock.now()
    session = db().execute("SELECT created, clients FROM sessions WHERE sid = ?", (sid,)).fetchone()
    with store().transaction() as conn:
        conn.execute("INSERT INTO auth_codes (code, tenant_id, client_id, user_id, redirect_uri, scopes, nonce, "
                     "code_challenge, code_challenge_method, sid, auth_time, created) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (code, user["tenant_id"], flow.client["client_id"], user["id"], flow.redirect_uri,
                      json.dumps({"oidc": oidc, "graph": graph}), flow.params.get("nonce"),
                      flow.get("code_challenge") or None, flow.get("code_challenge_method") or "plain", sid,
                      session["created"] if session else now, now))
        clients = json.loads(session["clients"]) if session else []
        if flow.client["client_id"] not in clients:
            clients.append(flow.client["client_id"])
            conn.execute("UPDATE sessions SET clients = ? WHERE sid = ?", (json.dumps(clients), sid))
    fields = {"code": code}
    if flow.get("client_info") == "1":
        fields["client_info"] = client_info(user["id"], user["tenant_id"])
    fields["session_state"] = sid
    return _with_session(flow.deliver(fields), sid)


def _with_session(response: Response, sid: str | None) -> Response:
    if sid and request.cookies.get(SESSION_COOKIE) != sid:
        set_session_cookie(response, sid)
    return response


@bp.post("/<tenant>/login")
def login(tenant: str) -> Response:
    flow = _flow_from_request(tenant)
    problem = flow.validate()
    if problem is not None:
        return problem
    action = request.form.get("action", "")
    if action == "cancel":
        if flow.kind == "adminconsent":
            return flow.error("access_denied", 65004, "User declined to consent to access the app.")
        return flow.error("access_denied", 65004, "User declined to consent to access the app.", "cancel")
    tenant_id = flow.tenant_row["id"] if flow.tenant_row else None
    username = request.form.get("username", "").strip()
    if action == "pick":
        user = user_by_id(request.form.get("user_id", ""))
        if user is not None and tenant_id and user["tenant_id"] != tenant_id:
            user = None
        if user is None:
            return _signin_page(flow, error="AADSTS50034: We couldn't find an account with that username.")
    else:
        user = user_by_upn(username, tenant_id) if username else None
        if user is None:
            return _signin_page(flow, username=username, error=(
                f"AADSTS50034: The user account {username or '(empty)'} does not exist in the "
                f"{tenant} directory. To sign into this application, the account must be added to the directory."))
        if not secrets.compare_digest(request.form.get("password", ""), user["password"]):
            return _signin_page(flow, username=username, error=(
                "AADSTS50126: Error validating credentials due to invalid username or password."))
    if not user["account_enabled"]:
        return _signin_page(flow, username=user["user_principal_name"], error=(
            "AADSTS50057: The user account is disabled. Ask your administrator to enable it."))
    sid = new_session(user)
    response = _authorize_step(flow, fresh_login=True, consented=False, user=user, sid=sid)
    return set_session_cookie(response, sid)


@bp.post("/<tenant>/consent")
def consent(tenant: str) -> Response:
    flow = _flow_from_request(tenant)
    problem = flow.validate()
    if problem is not None:
        return problem
    assert flow.client is not None
    session = current_session()
    user = user_by_id(session["user_id"]) if session else None
    if session is None or user is None:
        return _signin_page(flow)
    if request.form.get("action") != "accept":
        return flow.error("access_denied", 65004, "User declined to consent to access the app.",
                          None if flow.kind == "adminconsent" else "cancel")
    if flow.kind == "adminconsent":
        return _authorize_step(flow, fresh_login=True, consented=True, user=user, sid=session["sid"])
    _oidc, graph, _other = parse_scopes(flow.get("scope"), flow.client)
    org = request.form.get("org") == "1" and can_admin_consent(user)
    if any(is_admin_only(s) for s in graph) and not can_admin_consent(user):
        have = granted_scopes(user["tenant_id"], flow.client["client_id"], user["id"])
        if any(is_admin_only(s) for s in missing_scopes(graph, have)):
            return _need_admin_page(flow)
    with store().transaction() as conn:
        add_grant(conn, user["tenant_id"], flow.client["client_id"], "*" if org else user["id"], graph)
    return _authorize_step(flow, fresh_login=True, consented=True, user=user, sid=session["sid"])


# ---------------------------------------------------------------------------------------------- admin consent


def _adminconsent_scopes(flow: Flow) -> list[str]:
    assert flow.client is not None
    _oidc, graph, _other = parse_scopes(flow.get("scope") or f"{GRAPH_RESOURCE}/.default", flow.client)
    if any(s.lower() == ".default" for s in flow.get("scope").replace("/", " ").split()) or not flow.get("scope"):
        graph = graph + missing_scopes(flow.client["application"], graph)
    return graph


@bp.get("/<tenant>/v2.0/adminconsent")
def adminconsent(tenant: str) -> Response:
    flow = _flow_from_request(tenant)
    flow.kind = "adminconsent"
    problem = flow.validate()
    if problem is not None:
        return problem
    session, user = _session_user(flow)
    if user is None:
        return _signin_page(flow)
    assert session is not None
    return _authorize_step(flow, fresh_login=True, consented=False, user=user, sid=session["sid"])


def _adminconsent_done(flow: Flow, user: sqlite3.Row) -> Response:
    assert flow.client is not None
    scopes = _adminconsent_scopes(flow)
    with store().transaction() as conn:
        add_grant(conn, user["tenant_id"], flow.client["client_id"], "*", scopes)
    return flow.deliver({"admin_consent": "True", "tenant": user["tenant_id"],
                         "scope": " ".join(f"{GRAPH_RESOURCE}/{s}" for s in scopes)})


# ---------------------------------------------------------------------------------------------- token


def _tenant_for_token(tenant: str) -> tuple[str | None, Response | None]:
    """(tenant id or None for common/organizations, error response)."""
    if tenant.lower() in SPECIAL_TENANTS:
        return None, None
    row = resolve_tenant(tenant)
    if row is None:
        return None, token_error(90002, tenant=tenant)
    return row["id"], None


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
        verifier = form.get("code_verifier", "")
        if not verifier:
            return token_error(900144, param="code_verifier")
        if row["code_challenge_method"] == "S256":
            expected = b64url(hashlib.sha256(verifier.encode()).digest())
        else:
            expected = verifier
        if not secrets.compare_digest(expected, row["code_challenge"]):
            return token_error(501481)
    with store().transaction() as conn:
        updated = conn.execute("UPDATE auth_codes SET used = 1 WHERE code = ? AND used = 0", (code,)).rowcount
    if not updated:
        return token_error(54005)
    user = user_by_id(row["user_id"])
    if user is None:
        return token_error(50034)
    if not user["account_enabled"]:
        return token_error(50057)
    scopes = json.loads(row["scopes"])
    have = granted_scopes(user["tenant_id"], client["client_id"], user["id"])
    graph, oidc, problem = _scope_for_token(client, form.get("scope", ""), scopes["graph"], scopes["oidc"], have)
    if problem is not None:
        return problem
    missing = missing_scopes(graph, have)
    if missing:
        return token_error(65001, client_id=client["client_id"], client_name=client["name"])
    return issue_tokens(client, user, graph, oidc, nonce=row["nonce"], sid=row["sid"], auth_time=row["auth_time"])


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
    user = user_by_id(row["user_id"])
    if user is None:
        return token_error(50034)
    if not user["account_enabled"]:
        return token_error(50057)
    scopes = json.loads(row["scopes"])
    have = granted_scopes(user["tenant_id"], client["client_id"], user["id"])
    graph, oidc, problem = _scope_for_token(client, form.get("scope", ""), scopes["graph"], scopes["oidc"], have)
    if problem is not None:
        return problem
    if missing_scopes(graph, have) or missing_scopes(scopes["graph"], have):
        return token_error(65001, client_id=client["client_id"], client_name=client["name"])
    if "offline_access" in scopes["oidc"] and "offline_access" not in oidc:
        oidc = oidc + ["offline_access"]
    with store().transaction() as conn:
        conn.execute("UPDATE refresh_tokens SET last_used = ? WHERE token = ?", (now, rt))
    return issue_tokens(client, user, graph, oidc, nonce=None, sid=row["sid"], auth_time=row["auth_time"],
                        rt_graph=scopes["graph"])


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
    return _json(body, headers=NO_STORE)


def _user_groups(user_id: str) -> list[str]:
    return [r[0] for r in db().execute(
        "SELECT group_id FROM memberships WHERE member_id = ? AND relation = 'member'", (user_id,))]


def issue_tokens(client: dict, user: sqlite3.Row, graph: list[str], oidc: list[str], *, nonce: str | None,
                 sid: str | None, auth_time: float, rt_graph: list[str] | None = None) -> Response:
    """The success response of docs/microsoft.md §1.6 for a delegated grant."""
    now = int(clock.now())
    base = base_url()
    tid, oid = user["tenant_id"], user["id"]
    lifetime = random.randint(3600, 5399)  # noqa: S311 - Entra picks 60-90 minutes at random
    scp = graph + [o for o in oidc if o in ("openid", "profile", "email")]
    access_token = tokens.user_access_token(base, client, user, scp, now=now, lifetime=lifetime, sid=sid,
                                            ipaddr=request.remote_addr or "127.0.0.1")
    scope_out = [f"{GRAPH_RESOURCE}/{s}" for s in graph] + [o for o in oidc if o != "offline_access"]
    if "offline_access" in oidc:
        scope_out.append("offline_access")
    body: dict[str, Any] = {"token_type": "Bearer", "scope": " ".join(scope_out), "expires_in": lifetime,
                            "ext_expires_in": lifetime, "access_token": access_token}
    if "offline_access" in oidc:
        rt = "1.AXkA" + secrets.token_urlsafe(96)
        with store().transaction() as conn:
            conn.execute("INSERT INTO refresh_tokens (token, tenant_id, client_id, user_id, scopes, sid, auth_time, "
                         "created, last_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (rt, tid, client["client_id"], oid,
                          json.dumps({"graph": rt_graph if rt_graph is not None else graph, "oidc": oidc}),
                          sid, auth_time, now, now))
        body["refresh_token"] = rt
    if "openid" in oidc:
        groups = _user_groups(oid) if client["group_membership_claims"] else None
        body["id_token"] = tokens.id_token(base, client, user, oidc, nonce=nonce, sid=sid, auth_time=auth_time,
                                           now=now, groups=groups)
    if request.form.get("client_info") == "1":
        body["client_info"] = client_info(oid, tid)
    return _json(body, headers=NO_STORE)


# ---------------------------------------------------------------------------------------------- userinfo


@bp.get("/oidc/userinfo")
def userinfo() -> Response:
    auth = request.headers.get("Authorization", "")
    claims = verify_access_token(auth[7:] if auth.lower().startswith("bearer ") else None)
    if claims is None or "oid" not in claims:
        response = _json({"error": {"code": "InvalidAuthenticationToken", "message": "Access token validation "
                                    "failure. Invalid audience."}}, 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
        return response
    user = user_by_id(claims["oid"])
    if user is None:
        return _json({"error": {"code": "InvalidAuthenticationToken", "message": "User not found."}}, 401)
    body = {"sub": claims["sub"], "name": user["display_name"], "family_name": user["surname"],
            "given_name": user["given_name"], "picture": f"{base_url()}/v1.0/me/photo/$value"}
    if user["mail"]:
        body["email"] = user["mail"]
    return _json(body)


# ---------------------------------------------------------------------------------------------- logout


def _sessions_to_end() -> list[sqlite3.Row]:
    sessions = []
    current = current_session()
    if current is not None:
        sessions.append(current)
    params = request.values
    hint = params.get("id_token_hint")
    if hint:
        claims = keyring().decode(hint) or {}
        if claims.get("sid"):
            row = db().execute("SELECT * FROM sessions WHERE sid = ? AND ended = 0", (claims["sid"],)).fetchone()
            if row is not None:
                sessions.append(row)
    logout_hint = params.get("logout_hint")
    if logout_hint:
        try:
            uid = json.loads(base64.urlsafe_b64decode(logout_hint + "=" * (-len(logout_hint) % 4)))["uid"]
        except (ValueError, KeyError, TypeError):
            uid = None
        if uid:
            sessions += db().execute("SELECT * FROM sessions WHERE user_id = ? AND ended = 0", (uid,)).fetchall()
    unique = {s["sid"]: s for s in sessions}
    return list(unique.values())


def front_channel_logout(sessions: list[sqlite3.Row]) -> list[str]:
    """GET each registered front-channel logout URL of the apps used in these sessions (sid + iss)."""
    called = []
    for session in sessions:
        for client_id in json.loads(session["clients"]):
            client = get_client(client_id)
            if not client or not client["front_channel_logout_url"]:
                continue
            url = client["front_channel_logout_url"]
            sep = "&" if "?" in url else "?"
            issuer = f"{base_url()}/{session['tenant_id']}/v2.0"
            full = url + sep + urlencode({"sid": session["sid"], "iss": issuer})
            try:
                with requests.Session() as http:
                    http.trust_env = False
                    http.get(full, timeout=3, verify=False)  # noqa: S501 - local apps with local certificates
                called.append(full)
            except requests.RequestException:
                called.append(full + " (failed)")
    return called


@bp.route("/<tenant>/oauth2/v2.0/logout", methods=["GET", "POST"])
def logout(tenant: str) -> Response:
    params = request.values
    sessions = _sessions_to_end()
    with store().transaction() as conn:
        conn.executemany("UPDATE sessions SET ended = 1 WHERE sid = ?", [(s["sid"],) for s in sessions])
    front_channel_logout(sessions)
    target = params.get("post_logout_redirect_uri", "")
    response: Response
    if target and _logout_target_registered(target, params.get("client_id"), sessions):
        state = params.get("state")
        if state:
            target += ("&" if "?" in target else "?") + urlencode({"state": state})
        response = redirect(target, 302)
    else:
        response = message_page("You signed out of your account",
                                "It's a good idea to close all browser windows.", status=200)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="None")
    return response


def _logout_target_registered(target: str, client_id: str | None, sessions: list[sqlite3.Row]) -> bool:
    client_ids = [client_id] if client_id else [c for s in sessions for c in json.loads(s["clients"])]
    if not client_ids:
        client_ids = [r[0] for r in db().execute("SELECT client_id FROM clients")]
    for cid in client_ids:
        client = get_client(cid)
        if client and (redirect_registered(client, target) or target == client["front_channel_logout_url"]):
            return True
    return False
