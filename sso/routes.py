from __future__ import annotations

import contextlib
import math
from urllib.parse import urlencode, urlsplit

from flask import abort, current_app, flash, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func
from werkzeug.wrappers import Response

from core import audit
from core.crypto import InvalidToken, secret_box
from core.extensions import db, limiter
from core.models import Datasource, User, utcnow
from sso import bp
from sso.forms import LoginForm
from sso.models import SsoProvider
from sso.sessions import renew_session, store
from sso.settings import current_settings, enabled_providers, sign_in_labels
from sso.throttle import account_key, throttle, verify_password
from sso.urls import public_url, safe_next


def failed_sign_in(response: Response) -> bool:
    """Only failed attempts count towards the sign-in throttle."""
    return request.method == "POST" and response.status_code != 302


def _duration(seconds: float) -> str:
    whole = math.ceil(seconds)
    if whole < 90:
        return f"{whole} second{'s' if whole != 1 else ''}"
    return f"{math.ceil(whole / 60)} minutes"


def local_identity(user: User) -> dict:
    return {"user": user.email, "email": user.email, "name": user.display_name, "tid": user.tenant_id,
            "groups": [], "groups_source": "local account"}


@bp.before_app_request
def drop_disabled_users() -> None:
    """A session whose user was disabled (or deleted) ends on its next request, whatever path it asks for."""
    if request.endpoint in (None, "static", "sso.verify", "sso.jwks"):
        return
    if session.get("_user_id") and not current_user.is_authenticated:
        session.clear()


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute;30 per hour", methods=["POST"], deduct_when=failed_sign_in)
def login() -> Response | str:
    next_path = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_path or url_for("sso.home"))
    settings = current_settings()
    providers = enabled_providers()
    local = request.args.get("local") == "1"
    password_allowed = not (settings.auto_redirect and providers)
    if providers and settings.auto_redirect and not local:
        query = {"next": next_path} if next_path else {}
        return redirect(url_for("sso.sso_login", name=providers[0].name, **query))
    form = LoginForm()
    if form.validate_on_submit():
        email = (form.email.data or "").strip().lower()
        accounts = throttle()
        key = account_key(email)
        wait = accounts.retry_after(key)
        if wait > 0:  # refused before any password is checked, whether the account exists or not
            audit.record("sign_in.local", email, outcome="failure", actor=email, reason="throttled")
            db.session.commit()
            flash(f"Too many failed sign-ins for this account. Try again in {_duration(wait)}.", "danger")
            page = render_template("sso/login.html", form=form, providers=providers,
                                   labels=sign_in_labels(providers), next_path=next_path,
                                   show_password=password_allowed or local)
            response = make_response(page, 429)
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        user = db.session.scalar(db.select(User).where(func.lower(User.email) == email))
        if not verify_password(user.password_hash if user is not None else None, form.password.data or ""):
            accounts.failed(key)
            audit.record("sign_in.local", email, outcome="failure", actor=email, reason="bad credentials")
            db.session.commit()
            flash("Invalid email or password.", "danger")
        elif not user.active:
            audit.record("sign_in.local", email, outcome="failure", actor=email, reason="account disabled")
            db.session.commit()
            flash("This account is disabled. Ask an Administrator to enable it.", "danger")
        elif not password_allowed and not user.has_any_role(settings.bypass_role):
            audit.record("sign_in.local", email, outcome="failure", actor=email, reason="not in the bypass role")
            db.session.commit()
            flash("Password sign-in is reserved for administrators here: use single sign-on.", "danger")
        else:
            accounts.succeeded(key)
            renew_session()  # a fresh session id at every sign-in (no fixation)
            login_user(user)
            session["identity"] = local_identity(user)
            user.last_sign_in_at = utcnow()
            audit.record("sign_in.local", user.email, actor=user.email)
            db.session.commit()
            return redirect(next_path or url_for("sso.home"))
    return render_template("sso/login.html", form=form, providers=providers, labels=sign_in_labels(providers),
                           next_path=next_path,
                           show_password=password_allowed or local)


def _end_session_redirect(sso: dict) -> Response | None:
    """Where to send the browser so the provider ends its session too (None: no end_session_endpoint)."""
    from sso.oidc import ProviderError, client_for

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
                           organisation=_organisation_name(tenant_id))


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


@bp.after_app_request
def provider_form_targets(response: Response) -> Response:
    """Let forms redirect to generic providers too (sign-out goes to their end_session_endpoint).

    Runs before core.web's header hook, which keeps a Content-Security-Policy already set.
    """
    if "Content-Security-Policy" in response.headers or response.mimetype != "text/html":
        return response
    from core.web import content_security_policy

    origins = generic_provider_origins()
    if origins:
        response.headers["Content-Security-Policy"] = content_security_policy(current_app, origins)
    return response


def generic_provider_origins() -> tuple[str, ...]:
    import time

    cached = current_app.extensions.get("sso_provider_origins")
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    issuers = db.session.scalars(db.select(SsoProvider.issuer).where(SsoProvider.issuer.is_not(None))).all()
    found = {f"{urlsplit(i).scheme}://{urlsplit(i).netloc}" for i in issuers if i}
    if found:  # discovery may name endpoints (end_session_endpoint) on these hosts too
        found |= {f"https://{host}" for host in current_app.config.get("SSO_PROVIDER_ENDPOINT_HOSTS") or []}
    origins = tuple(sorted(found))
    current_app.extensions["sso_provider_origins"] = (time.monotonic() + 5.0, origins)
    return origins
