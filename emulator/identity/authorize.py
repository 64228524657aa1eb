"""Authorize endpoint: request checks, silent sign-in, MFA step, consent, the code (docs/microsoft.md §1.4, §1.9)."""

from __future__ import annotations

import json
import secrets
import sqlite3
from typing import Any

from flask import Response

from emulator import clock
from emulator.identity.adminconsent import adminconsent_step
from emulator.identity.blueprint import bp
from emulator.identity.common import db, store
from emulator.identity.errors import AADSTS
from emulator.identity.flow import Flow, flow_from_request, session_user
from emulator.identity.pages import consent_page, mfa_page, need_admin_page, signin_page
from emulator.identity.scopes import can_admin_consent, granted_scopes, is_admin_only, missing_scopes, parse_scopes
from emulator.identity.sessions import satisfied_contexts, with_session
from emulator.tokens import client_info


@bp.route("/<tenant>/oauth2/v2.0/authorize", methods=["GET", "POST"])
def authorize(tenant: str) -> Response:
    flow = flow_from_request(tenant)
    problem = flow.validate()
    if problem is not None:
        return problem
    return authorize_step(flow, fresh_login=False, consented=False)


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
    if flow.auth_contexts() is None:
        return flow.error("invalid_request", 90100, "The 'claims' parameter is not valid JSON.")
    _oidc, _graph, other = parse_scopes(flow.get("scope"), flow.client)
    if other:
        return flow.error("invalid_resource", 500011,
                          AADSTS[500011][2].format(resource=other[0].rsplit("/", 1)[0], tenant=flow.tenant))
    return None


def authorize_step(flow: Flow, *, fresh_login: bool, consented: bool, user: Any = None,
                   sid: str | None = None) -> Response:
    """The next page or redirect of a flow: sign-in, consent, or the code (admin consent: its grant)."""
    if flow.kind == "authorize":
        problem = _request_problem(flow)
        if problem is not None:
            return problem
    prompt = flow.get("prompt").lower()
    session = None
    if user is None:
        session, user = session_user(flow)
        sid = session["sid"] if (session is not None and user is not None) else None
        if prompt == "none" and user is None:
            if session is None:
                return flow.error("login_required", 50058,
                                  "A silent sign-in request was sent but no user is signed in.")
            return flow.error("interaction_required", 16000, "Either multiple user identities are available for "
                              "the current request or selected account is not supported for the scenario.")
        if user is None or (not fresh_login and prompt in ("login", "select_account")) or (
                flow.kind == "adminconsent" and user is None):
            return signin_page(flow, session_user=None)
    assert flow.client is not None and sid is not None
    if flow.kind == "adminconsent":
        return adminconsent_step(flow, user, consented=consented)
    contexts, essential = flow.auth_contexts() or ([], False)
    if essential and set(contexts) - satisfied_contexts(sid):
        if prompt == "none":
            return flow.error("interaction_required", 50076, "Due to a configuration change made by your "
                              "administrator, or because you moved to a new location, you must use multi-factor "
                              "authentication to access the application.")
        return with_session(mfa_page(flow, user, contexts), sid)
    _oidc, graph, _other = parse_scopes(flow.get("scope"), flow.client)
    have = granted_scopes(user["tenant_id"], flow.client["client_id"], user["id"])
    need = missing_scopes(graph, have)
    if not consented and (need or prompt == "consent"):
        if prompt == "none":
            return flow.error("consent_required", 65001, AADSTS[65001][2].format(
                client_id=flow.client["client_id"], client_name=flow.client["name"]))
        if any(is_admin_only(s) for s in need) and not can_admin_consent(user):
            return need_admin_page(flow)
        return consent_page(flow, user, need or graph, org=False)
    return _issue_code(flow, user, sid, graph)


def _issue_code(flow: Flow, user: sqlite3.Row, sid: str, graph: list[str]) -> Response:
    """Store a single-use code for this user, session and request, and deliver it to the redirect URI."""
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
        contexts, _essential = flow.auth_contexts() or ([], False)
        if flow.get("claims"):  # `acrs` only when asked for: the contexts asked for that this session satisfied
            done = satisfied_contexts(sid)
            conn.execute("INSERT INTO code_claims (code, acrs) VALUES (?, ?)",
                         (code, json.dumps([c for c in contexts if c in done])))
        clients = json.loads(session["clients"]) if session else []
        if flow.client["client_id"] not in clients:
            clients.append(flow.client["client_id"])
            conn.execute("UPDATE sessions SET clients = ? WHERE sid = ?", (json.dumps(clients), sid))
    fields = {"code": code}
    if flow.get("client_info") == "1":
        fields["client_info"] = client_info(user["id"], user["tenant_id"])
    fields["session_state"] = sid
    return with_session(flow.deliver(fields), sid)
