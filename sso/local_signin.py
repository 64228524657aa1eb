"""Local (password) sign-in: the /login page, the per-account throttle and the SSO auto-redirect."""

from __future__ import annotations

import math
import time

from flask import flash, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user
from sqlalchemy import func
from werkzeug.wrappers import Response

from core import audit
from core.extensions import db, limiter
from core.models import User, utcnow
from observability import metrics
from sso import bp
from sso.forms import LoginForm
from sso.sessions import renew_session
from sso.settings import current_settings, enabled_providers, sign_in_labels
from sso.throttle import account_key, throttle, verify_password
from sso.urls import safe_next


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
            metrics.sign_in("local", "throttled")
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
            metrics.sign_in("local", "failure")
            flash("Invalid email or password.", "danger")
        elif not user.active:
            audit.record("sign_in.local", email, outcome="failure", actor=email, reason="account disabled")
            db.session.commit()
            metrics.sign_in("local", "failure")
            flash("This account is disabled. Ask an Administrator to enable it.", "danger")
        elif not password_allowed and not user.has_any_role(settings.bypass_role):
            audit.record("sign_in.local", email, outcome="failure", actor=email, reason="not in the bypass role")
            db.session.commit()
            metrics.sign_in("local", "failure")
            flash("Password sign-in is reserved for administrators here: use single sign-on.", "danger")
        else:
            accounts.succeeded(key)
            renew_session()  # a fresh session id at every sign-in (no fixation)
            login_user(user)
            session["identity"] = {**local_identity(user), "provider": "local", "roles": [], "acrs": [],
                                   "auth_time": int(time.time()), "signed_in_at": time.time()}
            user.last_sign_in_at = utcnow()
            audit.record("sign_in.local", user.email, actor=user.email)
            db.session.commit()
            metrics.sign_in("local", "success")
            return redirect(next_path or url_for("sso.home"))
    return render_template("sso/login.html", form=form, providers=providers, labels=sign_in_labels(providers),
                           next_path=next_path,
                           show_password=password_allowed or local)
