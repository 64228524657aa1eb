"""Sign-in, consent and "Need admin approval" pages of a flow (docs/microsoft.md §1.4, §2)."""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import urlencode

from flask import Response, make_response, render_template

from emulator.identity.common import db, resolve_tenant
from emulator.identity.errors import error_description, message_page
from emulator.identity.flow import Flow
from emulator.identity.scopes import can_admin_consent, is_admin_only


def signin_page(flow: Flow, *, error: str = "", username: str = "", session_user: Any = None) -> Response:
    """Pick an account (up to 30 enabled users of the tenant) or type a user name and password."""
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


def consent_page(flow: Flow, user: sqlite3.Row, scopes: list[str], *, org: bool) -> Response:
    descriptions = [{"scope": s, "admin": is_admin_only(s)} for s in scopes]
    return make_response(render_template("consent.html", title="Permissions requested", flow=flow, user=user,
                                         scopes=descriptions, client=flow.client, org_forced=org,
                                         can_org=can_admin_consent(user), tenant=flow.tenant))


def mfa_page(flow: Flow, user: sqlite3.Row, contexts: list[str]) -> Response:
    """The extra verification an authentication context's Conditional Access policy asks for (docs/microsoft.md
    §1.9): approve (as with the Authenticator app) or cancel."""
    return make_response(render_template("mfa.html", title="Approve sign-in request", flow=flow, user=user,
                                         contexts=contexts, client=flow.client, tenant=flow.tenant))


def need_admin_page(flow: Flow) -> Response:
    """A user asked for scopes only an admin may grant (AADSTS90094), with a way back to the app."""
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
