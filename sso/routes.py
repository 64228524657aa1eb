"""Pages of a signed-in person: home, their own sessions, sign-out (local and through the provider)."""

from __future__ import annotations

import contextlib
from urllib.parse import urlencode

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, logout_user
from werkzeug.wrappers import Response

from core import audit
from core.crypto import InvalidToken, secret_box
from core.extensions import db
from core.models import Datasource
from sso import bp
from sso.access_requests import unseen_outcomes
from sso.local_signin import local_identity
from sso.models import SsoProvider
from sso.oidc import ProviderError, client_for
from sso.sessions import renew_session, store
from sso.urls import public_url


@bp.before_app_request
def drop_disabled_users() -> None:
    """A session whose user was disabled (or deleted) ends on its next request, whatever path it asks for."""
    if request.endpoint in (None, "static", "sso.verify", "sso.jwks"):
        return
    if session.get("_user_id") and not current_user.is_authenticated:
        session.clear()


def _end_session_redirect(sso: dict) -> Response | None:
    """Where to send the browser so the provider ends its session too (None: no end_session_endpoint)."""

    provider = db.session.scalar(db.select(SsoProvider).filter_by(name=sso.get("provider")))
    if provider is None:
        return None
    try:
        client = client_for(provider)
    except ProviderError:
        return None
    endpoint = client.end_session_endpoint()
    if not endpoint:
        return None
    params = {"post_logout_redirect_uri": public_url("/sso/signed-out"), "client_id": client.client_id}
    if client.is_office365 and sso.get("login_hint"):
        params["logout_hint"] = sso["login_hint"]
    elif sso.get("id_token"):
        with contextlib.suppress(InvalidToken):
            params["id_token_hint"] = secret_box().decrypt(sso["id_token"])
    return redirect(endpoint + ("&" if "?" in endpoint else "?") + urlencode(params))


@bp.post("/logout")
@login_required
def logout() -> Response:
    audit.record("sign_out", current_user.email)
    db.session.commit()
    sso = dict(session.get("sso") or {})
    logout_user()
    renew_session()  # the old id is deleted server-side, whatever happens next
    if sso:
        target = _end_session_redirect(sso)
        if target is not None:
            return target
    flash("You have been signed out.", "info")
    return redirect(url_for("sso.login"))


@bp.get("/sso/signed-out")
def signed_out() -> str:
    return render_template("sso/signed_out.html")


@bp.get("/")
@login_required
def home() -> str:
    identity = session.get("identity") or local_identity(current_user)
    tenant_id = identity.get("tid") or current_user.tenant_id
    return render_template("sso/home.html", identity=identity, sessions=store().for_user(current_user.id),
                           current_public_id=_current_public_id(), tenant_id=tenant_id,
                           organisation=_organisation_name(tenant_id),
                           outcomes=unseen_outcomes(current_user._get_current_object()))


def _organisation_name(tenant_id: str | None) -> str | None:
    """The name of the Office 365 organisation with this tenant id, as its data source's authorization recorded it."""
    if not tenant_id:
        return None
    return db.session.scalar(db.select(Datasource.tenant_name).where(
        Datasource.tenant_id == tenant_id, Datasource.tenant_name.is_not(None)).limit(1))


def _current_public_id() -> str | None:
    record = getattr(session, "record", None)
    return record.public_id if record is not None else None


@bp.get("/sessions")
@login_required
def my_sessions() -> str:
    return render_template("sso/sessions.html", sessions=store().for_user(current_user.id),
                           current_public_id=_current_public_id())


@bp.post("/sessions/<public_id>/end")
@login_required
def end_my_session(public_id: str) -> Response:
    match = [r for r in store().for_user(current_user.id) if r.public_id == public_id]
    if not match:
        abort(404)
    if public_id == _current_public_id():
        return logout()
    store().delete(match[0].id_hash)
    audit.record("session.end", current_user.email, session=public_id)
    db.session.commit()
    flash("That session has been signed out.", "success")
    return redirect(url_for("sso.my_sessions"))
