"""An authorize or admin-consent request worked through the pages (docs/microsoft.md §1.4, §1.5, §2)."""

from __future__ import annotations

import json
import re
import sqlite3
from urllib.parse import parse_qsl, urlencode

from flask import Response, make_response, redirect, render_template, request

from emulator import clock
from emulator.identity.common import SPECIAL_TENANTS, get_client, redirect_registered, resolve_tenant, user_by_id
from emulator.identity.errors import AADSTS, error_description, message_page
from emulator.identity.sessions import current_session

TROUBLE = "Sorry, but we're having trouble signing you in."
AUTH_CONTEXT = re.compile(r"^c(?:[1-9]|[1-9][0-9])$")  # Conditional Access authentication context ids c1..c99


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
            return message_page(TROUBLE, text)
        if self.kind == "adminconsent" and self.tenant.lower() == "common":
            return message_page(TROUBLE, AADSTS[50059][2], code=50059)
        client_id = self.get("client_id")
        if not client_id:
            return message_page(TROUBLE, AADSTS[900144][2].format(param="client_id"), code=900144)
        self.client = get_client(client_id)
        if self.client is None:
            return message_page(TROUBLE, AADSTS[700016][2].format(client_id=client_id, tenant=self.tenant),
                                code=700016)
        uri = self.get("redirect_uri")
        if not uri:
            if not self.client["redirect_uris"]:
                return message_page(TROUBLE, "No reply address is registered for the application.", code=500113)
            uri = self.client["redirect_uris"][0]
        elif not redirect_registered(self.client, uri):
            return message_page(
                TROUBLE,
                f"The redirect URI '{uri}' specified in the request does not match the redirect URIs configured "
                f"for the application '{client_id}'. Make sure the redirect URI sent in the request matches one "
                "added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError "
                "to learn more about how to fix this.", code=50011)
        self.redirect_uri = uri
        return None

    def auth_contexts(self) -> tuple[list[str], bool] | None:
        """The authentication contexts the `claims` parameter asks for in the ID token's `acrs`
        (`{"id_token": {"acrs": {"essential": true, "values": ["c1"]}}}`, or `"value": "c1"`), and whether they
        are essential (docs/microsoft.md §1.9). ([], False) without a request; None: `claims` is not JSON."""
        raw = self.get("claims")
        if not raw:
            return [], False
        try:
            claims = json.loads(raw)
        except ValueError:
            return None
        request = (claims.get("id_token") or {}).get("acrs") if isinstance(claims, dict) else None
        if not isinstance(request, dict):
            return [], False
        values = request.get("values") if isinstance(request.get("values"), list) else [request.get("value")]
        wanted = [v for v in dict.fromkeys(values) if isinstance(v, str) and AUTH_CONTEXT.fullmatch(v)]
        return wanted, request.get("essential") is True

    # -- delivery to the redirect URI

    def deliver(self, fields: dict[str, str]) -> Response:
        if self.kind in ("authorize", "adminconsent") and self.get("state"):
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


def flow_from_request(tenant: str) -> Flow:
    """The flow of this request: the page forms carry it in `ctx` and `kind`, authorize in its parameters."""
    if request.method == "POST" and "ctx" in request.form:
        params = dict(parse_qsl(request.form["ctx"], keep_blank_values=True))
        return Flow(tenant, params, request.form.get("kind", "authorize"))
    source = request.form if request.method == "POST" else request.args
    return Flow(tenant, {k: v for k, v in source.items()})


def session_user(flow: Flow) -> tuple[sqlite3.Row | None, sqlite3.Row | None]:
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
