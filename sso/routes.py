from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func
from werkzeug.wrappers import Response

from core import audit
from core.extensions import db, limiter
from core.models import User, utcnow
from sso import bp
from sso.forms import LoginForm


def safe_next(target: str | None) -> str | None:
    """Accept only a same-site relative path ("/x"), never "//host", "/\\host" or a scheme."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ch in target for ch in "\\\r\n\t"):
        return None
    return target


def failed_sign_in(response: Response) -> bool:
    """Only failed attempts count towards the sign-in throttle."""
    return request.method == "POST" and response.status_code != 302


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute;30 per hour", methods=["POST"], deduct_when=failed_sign_in)
def login() -> Response | str:
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")) or url_for("sso.home"))
    form = LoginForm()
    if form.validate_on_submit():
        email = (form.email.data or "").strip().lower()
        user = db.session.scalar(db.select(User).where(func.lower(User.email) == email))
        if user is None or not user.check_password(form.password.data or ""):
            audit.record("sign_in.local", email, outcome="failure", actor=email, reason="bad credentials")
            flash("Invalid email or password.", "danger")
        elif not user.active:
            audit.record("sign_in.local", email, outcome="failure", actor=email, reason="account disabled")
            flash("This account is disabled. Ask an Administrator to enable it.", "danger")
        else:
            session.clear()  # a fresh session at every sign-in (no fixation)
            login_user(user, remember=bool(form.remember.data))
            user.last_sign_in_at = utcnow()
            audit.record("sign_in.local", user.email, actor=user.email)
            return redirect(safe_next(request.args.get("next")) or url_for("sso.home"))
    return render_template("sso/login.html", form=form)


@bp.post("/logout")
@login_required
def logout() -> Response:
    audit.record("sign_out", current_user.email)
    logout_user()
    session.clear()
    flash("You have been signed out.", "info")
    return redirect(url_for("sso.login"))


@bp.get("/")
@login_required
def home() -> str:
    return render_template("sso/home.html")
