"""Posts of the sign-in and consent forms (/{tenant}/login, /{tenant}/consent) (docs/microsoft.md §1.4, §2)."""

from __future__ import annotations

import secrets

from flask import Response, request

from emulator.identity.authorize import authorize_step
from emulator.identity.blueprint import bp
from emulator.identity.common import store, user_by_id, user_by_upn
from emulator.identity.flow import flow_from_request
from emulator.identity.pages import need_admin_page, signin_page
from emulator.identity.scopes import (
    add_grant,
    can_admin_consent,
    granted_scopes,
    is_admin_only,
    missing_scopes,
    parse_scopes,
)
from emulator.identity.sessions import current_session, new_session, set_session_cookie

DECLINED = "User declined to consent to access the app."


@bp.post("/<tenant>/login")
def login(tenant: str) -> Response:
    """Pick an account, type a user name and password, or cancel."""
    flow = flow_from_request(tenant)
    problem = flow.validate()
    if problem is not None:
        return problem
    action = request.form.get("action", "")
    if action == "cancel":
        if flow.kind == "adminconsent":
            return flow.error("access_denied", 65004, DECLINED)
        return flow.error("access_denied", 65004, DECLINED, "cancel")
    tenant_id = flow.tenant_row["id"] if flow.tenant_row else None
    username = request.form.get("username", "").strip()
    if action == "pick":
        user = user_by_id(request.form.get("user_id", ""))
        if user is not None and tenant_id and user["tenant_id"] != tenant_id:
            user = None
        if user is None:
            return signin_page(flow, error="AADSTS50034: We couldn't find an account with that username.")
    else:
        user = user_by_upn(username, tenant_id) if username else None
        if user is None:
            return signin_page(flow, username=username, error=(
                f"AADSTS50034: The user account {username or '(empty)'} does not exist in the "
                f"{tenant} directory. To sign into this application, the account must be added to the directory."))
        if not secrets.compare_digest(request.form.get("password", ""), user["password"]):
            return signin_page(flow, username=username, error=(
                "AADSTS50126: Error validating credentials due to invalid username or password."))
    if not user["account_enabled"]:
        return signin_page(flow, username=user["user_principal_name"], error=(
            "AADSTS50057: The user account is disabled. Ask your administrator to enable it."))
    sid = new_session(user)
    response = authorize_step(flow, fresh_login=True, consented=False, user=user, sid=sid)
    return set_session_cookie(response, sid)


@bp.post("/<tenant>/consent")
def consent(tenant: str) -> Response:
    """Accept (for oneself, or with org=1 for the organisation when an admin) or cancel."""
    flow = flow_from_request(tenant)
    problem = flow.validate()
    if problem is not None:
        return problem
    assert flow.client is not None
    session = current_session()
    user = user_by_id(session["user_id"]) if session else None
    if session is None or user is None:
        return signin_page(flow)
    if request.form.get("action") != "accept":
        return flow.error("access_denied", 65004, DECLINED, None if flow.kind == "adminconsent" else "cancel")
    if flow.kind == "adminconsent":
        return authorize_step(flow, fresh_login=True, consented=True, user=user, sid=session["sid"])
    _oidc, graph, _other = parse_scopes(flow.get("scope"), flow.client)
    org = request.form.get("org") == "1" and can_admin_consent(user)
    if any(is_admin_only(s) for s in graph) and not can_admin_consent(user):
        have = granted_scopes(user["tenant_id"], flow.client["client_id"], user["id"])
        if any(is_admin_only(s) for s in missing_scopes(graph, have)):
            return need_admin_page(flow)
    with store().transaction() as conn:
        add_grant(conn, user["tenant_id"], flow.client["client_id"], "*" if org else user["id"], graph)
    return authorize_step(flow, fresh_login=True, consented=True, user=user, sid=session["sid"])
