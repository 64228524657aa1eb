"""Administration > Single Sign-On (Administrator): settings, providers, a user's sessions, sign-in diagnostics."""

from __future__ import annotations

import json

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, or_
from werkzeug.wrappers import Response

from admin import bp
from core import audit
from core.access import roles_required
from core.converters import DB_INT_MAX, parse_int
from core.extensions import db
from core.input import holds_forbidden_text
from core.models import Datasource, Role, User
from core.timefmt import format_local
from sso.models import SignInAttempt, SsoProvider
from sso.providers import CLAIMS, ProviderProblem, add_generic_provider, add_office365_provider, remove_provider
from sso.sessions import store
from sso.settings import forget_settings, settings_row
from sso.signing_keys import DEFAULT_ACTIVATE_IN, key_states, prune, rotate

NUMBERS = {"idle_timeout_minutes": (1, 7 * 24 * 60), "absolute_timeout_hours": (1, 24 * 90),
           "clock_leeway_seconds": (0, 600), "group_cache_minutes": (1, 24 * 60)}


def _sso_datasources() -> list[Datasource]:
    return list(db.session.scalars(db.select(Datasource).filter_by(sso_enabled=True, status=Datasource.READY)
                                   .order_by(Datasource.name)))


def _bypass_members(role_name: str) -> int:
    """Active members of the bypass role who can sign in with a password (the way back in)."""
    return sum(1 for user in db.session.scalars(db.select(User).filter_by(active=True))
               if user.password_hash and user.has_any_role(role_name))


FLAGS = ("enabled", "auto_redirect", "create_users")


def _stored_values() -> dict[str, object]:
    """The settings form's values as stored (what GET shows)."""
    row = settings_row()
    values: dict[str, object] = {name: getattr(row, name) for name in (*FLAGS, "bypass_role", *NUMBERS)}
    values["policies"] = json.dumps(row.policies)
    return values


def _page(status: int = 200, *, values: dict[str, object] | None = None,
          errors: dict[str, str] | None = None) -> tuple[str, int]:
    providers = db.session.scalars(db.select(SsoProvider).order_by(SsoProvider.name)).all()
    datasources = {d.id: d for d in db.session.scalars(db.select(Datasource))}
    return render_template("admin/sso/settings.html", values=values or _stored_values(), errors=errors or {},
                           providers=providers, datasources=datasources, sso_datasources=_sso_datasources(),
                           roles=Role.ALL, claims=sorted(CLAIMS), form=request.form, keys=key_states()), status


def _parse_policies(text: str) -> dict | None:
    try:
        policies = json.loads(text or "{}")
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser follows
        return None
    valid = isinstance(policies, dict) and all(
        isinstance(rules, dict) and set(rules) <= {"groups", "emails", "domains"}
        and all(isinstance(v, list) for v in rules.values()) for rules in policies.values())
    return policies if valid and not holds_forbidden_text(policies) else None


@bp.get("/sso")
@roles_required(Role.ADMINISTRATOR)
def single_sign_on() -> tuple[str, int]:
    return _page()


@bp.post("/sso")
@roles_required(Role.ADMINISTRATOR)
def sso_settings_save() -> Response | tuple[str, int]:
    """Save the settings, or show the form again as typed with each problem next to its field."""
    form = request.form
    submitted: dict[str, object] = {name: form.get(name) == "y" for name in FLAGS}
    submitted.update({name: form.get(name, "") for name in ("bypass_role", "policies", *NUMBERS)})
    errors: dict[str, str] = {}
    values: dict[str, object] = {name: submitted[name] for name in FLAGS}
    role = form.get("bypass_role", "")
    if role in Role.ALL:
        values["bypass_role"] = role
    else:
        errors["bypass_role"] = "Choose the bypass role from the list."
    for name, (low, high) in NUMBERS.items():
        number = parse_int(form.get(name, ""), low, high)
        if number is None:
            errors[name] = f"This must be a whole number from {low} to {high}."
        values[name] = number
    policies = _parse_policies(form.get("policies", ""))
    if policies is None:
        errors["policies"] = 'Policies must be JSON like {"staff": {"groups": ["<group id>"], ' \
                             '"domains": ["contoso.example"]}}.'
    if values["auto_redirect"] and "bypass_role" not in errors and not _bypass_members(role):
        errors["auto_redirect"] = (f"Nobody in the {role} role can sign in with a password: automatic redirect "
                                   "would lock everyone out. Give someone that role (with a password) first.")
    if errors:
        flash("The settings were not saved: correct the marked fields.", "danger")
        return _page(400, values=submitted, errors=errors)
    row = settings_row()
    for name, value in values.items():
        setattr(row, name, value)
    row.policies = policies
    row.updated_by = audit.current_actor()
    audit.record("sso.settings", "Single Sign-On", **values, policies=sorted(policies or {}))
    db.session.commit()
    forget_settings()
    flash("Single Sign-On settings saved.", "success")
    return redirect(url_for("admin.single_sign_on"))


@bp.post("/sso/providers")
@roles_required(Role.ADMINISTRATOR)
def sso_provider_add() -> Response | tuple[str, int]:
    form = request.form
    try:
        if form.get("kind") == SsoProvider.OFFICE365:
            datasource_id = parse_int(form.get("datasource_id", ""), 1, DB_INT_MAX)
            datasource = db.session.get(Datasource, datasource_id) if datasource_id else None
            if datasource is None:
                raise ProviderProblem("Choose an Office 365 datasource.")
            provider = add_office365_provider(form.get("name", ""), datasource,
                                              user_claim=form.get("user_claim", "preferred_username"),
                                              response_mode=form.get("response_mode", "query"))
        else:
            provider = add_generic_provider(form.get("name", ""), form.get("issuer", ""), form.get("client_id", ""),
                                            form.get("client_secret", ""), scopes=form.get("scopes", "openid"),
                                            user_claim=form.get("user_claim", "preferred_username"),
                                            response_mode=form.get("response_mode", "query"),
                                            trust_unverified_email=form.get("trust_unverified_email") == "y")
    except ProviderProblem as exc:
        db.session.rollback()
        flash(str(exc), "danger")
        return _page(400)
    audit.record("sso.provider.add", provider.name, kind=provider.kind,
                 trust_unverified_email=provider.trust_unverified_email)
    db.session.commit()
    flash(f"Provider {provider.name} added.", "success")
    return redirect(url_for("admin.single_sign_on"))


@bp.post("/sso/providers/<id:provider_id>/delete")
@roles_required(Role.ADMINISTRATOR)
def sso_provider_delete(provider_id: int) -> Response:
    provider = db.get_or_404(SsoProvider, provider_id)
    name = provider.name
    remove_provider(provider)
    audit.record("sso.provider.remove", name)
    db.session.commit()
    flash(f"Provider {name} removed.", "success")
    return redirect(url_for("admin.single_sign_on"))


@bp.post("/sso/keys/rotate")
@roles_required(Role.ADMINISTRATOR)
def sso_key_rotate() -> Response:
    row = rotate(DEFAULT_ACTIVATE_IN)
    audit.record("sso.key.rotate", row.kid, activate_in=DEFAULT_ACTIVATE_IN)
    db.session.commit()
    flash(f"New signing key {row.kid} published; it signs from {format_local(row.activates_at)} (apps may cache the "
          "keys for 5 minutes). Remove the old keys a few minutes after that.", "success")
    return redirect(url_for("admin.single_sign_on") + "#signing-keys")


@bp.post("/sso/keys/prune")
@roles_required(Role.ADMINISTRATOR)
def sso_key_prune() -> Response:
    gone = prune()
    for kid in gone:
        audit.record("sso.key.prune", kid)
    db.session.commit()
    if gone:
        flash(f"Removed {len(gone)} old signing key(s).", "success")
    else:
        flash("No key can be removed yet: keep the old keys until the new one has signed for a few minutes.",
              "info")
    return redirect(url_for("admin.single_sign_on") + "#signing-keys")


@bp.get("/sso/sessions")
@roles_required(Role.ADMINISTRATOR)
def sso_sessions_lookup() -> Response | str:
    query = (request.args.get("user") or "").strip().lower()
    if query:
        user = db.session.scalar(db.select(User).where(func.lower(User.email) == query))
        if user is not None:
            return redirect(url_for("admin.sso_user_sessions", user_id=user.id))
        flash(f"No user {query}.", "warning")
    return render_template("admin/sso/sessions_lookup.html", query=query)


@bp.get("/sso/users/<id:user_id>/sessions")
@roles_required(Role.ADMINISTRATOR)
def sso_user_sessions(user_id: int) -> str:
    user = db.get_or_404(User, user_id)
    return render_template("admin/sso/user_sessions.html", user=user, sessions=store().for_user(user.id),
                           current_public_id=None)


@bp.post("/sso/users/<id:user_id>/sessions/<public_id>/end")
@roles_required(Role.ADMINISTRATOR)
def sso_user_session_end(user_id: int, public_id: str) -> Response:
    user = db.get_or_404(User, user_id)
    match = [r for r in store().for_user(user.id) if r.public_id == public_id]
    if not match:
        abort(404)
    store().delete(match[0].id_hash)
    audit.record("session.revoke", user.email, session=public_id)
    db.session.commit()
    flash("Session revoked: it ends on its next request.", "success")
    return redirect(url_for("admin.sso_user_sessions", user_id=user.id))


@bp.post("/sso/users/<id:user_id>/sessions/end-all")
@roles_required(Role.ADMINISTRATOR)
def sso_user_sessions_end_all(user_id: int) -> Response:
    user = db.get_or_404(User, user_id)
    ended = store().end_for_user(user.id)
    audit.record("session.revoke_all", user.email, sessions=ended)
    db.session.commit()
    flash(f"Signed {user.email} out everywhere ({ended} session{'s' if ended != 1 else ''}).", "success")
    return redirect(url_for("admin.sso_user_sessions", user_id=user.id))


@bp.get("/sso/diagnostics")
@roles_required(Role.ADMINISTRATOR)
def sso_diagnostics() -> str:
    query = (request.args.get("q") or "").strip()
    select = db.select(SignInAttempt).order_by(SignInAttempt.at.desc()).limit(50)
    if query:
        like = f"%{query.lower()}%"
        select = select.where(or_(func.lower(SignInAttempt.username).like(like),
                                  SignInAttempt.reference == query.upper()))
    return render_template("admin/sso/diagnostics.html", attempts=db.session.scalars(select).all(), query=query)
