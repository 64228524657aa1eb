"""Admin consent endpoint /{tenant}/v2.0/adminconsent: grant for the organisation (docs/microsoft.md §2)."""

from __future__ import annotations

import sqlite3

from flask import Response

from emulator.identity.blueprint import bp
from emulator.identity.common import store
from emulator.identity.flow import Flow, flow_from_request, session_user
from emulator.identity.pages import consent_page, signin_page
from emulator.identity.scopes import add_grant, can_admin_consent, missing_scopes, parse_scopes
from emulator.tokens import GRAPH_RESOURCE


@bp.get("/<tenant>/v2.0/adminconsent")
def adminconsent(tenant: str) -> Response:
    flow = flow_from_request(tenant)
    flow.kind = "adminconsent"
    problem = flow.validate()
    if problem is not None:
        return problem
    session, user = session_user(flow)
    if user is None:
        return signin_page(flow)
    assert session is not None
    return adminconsent_step(flow, user, consented=False)


def adminconsent_step(flow: Flow, user: sqlite3.Row, *, consented: bool) -> Response:
    """With a signed-in user: refuse non-admins, show the consent page, then grant for everyone."""
    if not can_admin_consent(user):
        return flow.error("access_denied", 90094, "The grant requires admin permission.")
    if not consented:
        return consent_page(flow, user, adminconsent_scopes(flow), org=True)
    return _grant_for_organisation(flow, user)


def adminconsent_scopes(flow: Flow) -> list[str]:
    """The scopes asked for; `.default` (or none) means every application permission registered."""
    assert flow.client is not None
    _oidc, graph, _other = parse_scopes(flow.get("scope") or f"{GRAPH_RESOURCE}/.default", flow.client)
    if any(s.lower() == ".default" for s in flow.get("scope").replace("/", " ").split()) or not flow.get("scope"):
        graph = graph + missing_scopes(flow.client["application"], graph)
    return graph


def _grant_for_organisation(flow: Flow, user: sqlite3.Row) -> Response:
    assert flow.client is not None
    scopes = adminconsent_scopes(flow)
    with store().transaction() as conn:
        add_grant(conn, user["tenant_id"], flow.client["client_id"], "*", scopes)
    return flow.deliver({"admin_consent": "True", "tenant": user["tenant_id"],
                         "scope": " ".join(f"{GRAPH_RESOURCE}/{s}" for s in scopes)})
