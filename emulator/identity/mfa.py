"""The extra (MFA) step of a Conditional Access authentication context: `/{tenant}/mfa` (docs/microsoft.md §1.9)."""

from __future__ import annotations

from flask import Response, request

from emulator.identity.authorize import authorize_step
from emulator.identity.blueprint import bp
from emulator.identity.common import user_by_id
from emulator.identity.flow import flow_from_request
from emulator.identity.pages import signin_page
from emulator.identity.sessions import current_session, satisfy_contexts


@bp.post("/<tenant>/mfa")
def mfa(tenant: str) -> Response:
    """Approve: the browser session satisfies the contexts asked for, and the flow goes on. Cancel: the app gets
    `access_denied` (AADSTS500121, strong authentication failed)."""
    flow = flow_from_request(tenant)
    problem = flow.validate()
    if problem is not None:
        return problem
    session = current_session()
    user = user_by_id(session["user_id"]) if session else None
    if session is None or user is None:
        return signin_page(flow)
    if request.form.get("action") != "approve":
        return flow.error("access_denied", 500121, "Authentication failed during strong authentication request.")
    contexts, _essential = flow.auth_contexts() or ([], False)
    satisfy_contexts(session["sid"], contexts)
    return authorize_step(flow, fresh_login=True, consented=False, user=user, sid=session["sid"])
