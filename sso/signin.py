"""`GET /sso/login/<provider>` and the callback: the authorization-code flow with PKCE, state and nonce.

The flow (nonce, PKCE verifier, `next`, redirect URI) is kept in the single-use pending-flow store
(core.pending_flows: encrypted, expiring, taken once across workers) keyed by `state`, so any worker can finish it,
a form_post callback needs no cookie, and a replayed callback finds nothing.
A small binding cookie ties the flow to the browser that started it (login CSRF).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from datetime import timedelta
from typing import Any

from flask import abort, redirect, render_template, request, session, url_for
from flask_login import login_user
from sqlalchemy import delete
from werkzeug.wrappers import Response

from core import audit
from core.crypto import secret_box
from core.extensions import csrf, db
from core.models import utcnow
from core.pending_flows import PendingFlows
from observability import metrics
from oidc.id_tokens import IdTokenError
from sso import bp
from sso.identity import Groups, SignInRefused, groups_of, resolve_user
from sso.models import SignInAttempt, SsoProvider
from sso.oidc import ProviderClient, ProviderError, client_for, now
from sso.sessions import renew_session
from sso.settings import current_settings, provider_usable
from sso.urls import public_url, safe_next

FLOW_COOKIE = "gw_sso_flow"
FLOW_LIFETIME = timedelta(minutes=10)
PENDING = PendingFlows("sso_sign_in", FLOW_LIFETIME)
STEP_UP_KEY = "step_up_done"  # {"url", "at"}: the step-up this session just finished (sso.step_up: no loop)
FORWARDED_HEADERS = ("Host", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-For",
                     "X-Forwarded-Uri", "X-Original-URL")


def callback_uri() -> str:
    return public_url("/sso/callback")


def _binding_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _provider(name: str) -> SsoProvider:
    provider = db.session.scalar(db.select(SsoProvider).filter_by(name=name))
    if provider is None or not provider.enabled or not current_settings().enabled or not provider_usable(provider):
        abort(404)
    return provider


@bp.get("/sso/login/<name>")
def sso_login(name: str) -> Response | tuple[str, int]:
    provider = _provider(name)
    return begin(provider, next_path=safe_next(request.args.get("next")),
                 login_hint=(request.args.get("login_hint") or "")[:256] or None,
                 domain_hint=(request.args.get("domain_hint") or provider.domain_hint or "")[:256] or None)


def begin(provider: SsoProvider, *, next_path: str | None, login_hint: str | None, domain_hint: str | None,
          step_up: dict[str, Any] | None = None, return_url: str | None = None) -> Response | tuple[str, int]:
    """Redirect to the provider's authorize endpoint; the flow waits in the pending-flow store.

    `step_up` (sso.step_up): `{"user_id", "auth_context", "acrs", "max_age"}`: the authorize request carries the
    OIDC `claims` request for `acrs` and/or `max_age`, and the callback checks the new ID token against them.
    `return_url`: an absolute URL (already checked against ALLOWED_REDIRECT_DOMAINS) to go to after the callback."""
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier, binding = secrets.token_urlsafe(48), secrets.token_urlsafe(32)
    redirect_uri = callback_uri()
    claims = None
    if step_up and step_up.get("acrs"):
        claims = json.dumps({"id_token": {"acrs": {"essential": True, "values": step_up["acrs"]}}},
                            separators=(",", ":"))
    try:
        client = client_for(provider)
        url = client.authorization_url(redirect_uri, state=state, nonce=nonce, code_verifier=verifier,
                                       response_mode=provider.response_mode, login_hint=login_hint,
                                       domain_hint=domain_hint, claims=claims,
                                       max_age=step_up.get("max_age") if step_up else None)
    except ProviderError as exc:
        return failure(provider.name, exc.check, str(exc), status=502)
    PENDING.put(state, {"provider_id": provider.id, "nonce": nonce, "verifier": verifier,
                        "binding": _binding_hash(binding), "next_path": next_path, "redirect_uri": redirect_uri,
                        "step_up": step_up, "return_url": return_url})
    db.session.commit()
    response = redirect(url)
    cross_site_post = provider.response_mode == "form_post" and request.is_secure
    response.set_cookie(FLOW_COOKIE, binding, max_age=int(FLOW_LIFETIME.total_seconds()), path="/sso/callback",
                        httponly=True, secure=request.is_secure or cross_site_post,
                        samesite="None" if cross_site_post else "Lax")
    return response


def step_up_problem(step_up: dict[str, Any], claims: dict[str, Any], leeway: int) -> tuple[str, str] | None:
    """(check, message) when the new ID token does not prove what the step-up asked for: the authentication
    context in `acrs`, a sign-in no older than `max_age` in `auth_time` (docs/microsoft.md §1.9)."""
    context = step_up.get("auth_context")
    acrs = claims.get("acrs")
    if context and not (isinstance(acrs, list) and context in acrs):
        return "acrs", (f"This page needs authentication context {context}, and the sign-in service did not confirm "
                        f"it (the ID token's acrs claim does not name {context}). Access is refused; try again, or "
                        "ask an administrator whether your account can meet that requirement.")
    max_age = step_up.get("max_age")
    if max_age is not None:
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, int | float) or isinstance(auth_time, bool):
            return "auth_time", ("This page needs a recent sign-in, and the sign-in service did not say when you "
                                 "signed in (no auth_time in the ID token). Access is refused.")
        if now() - auth_time > max_age + leeway:
            return "auth_time", (f"This page needs a sign-in from the last {_minutes(max_age)}, and the sign-in "
                                 "service reused an older one. Access is refused; sign out and in again.")
    return None


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def session_identity(provider: SsoProvider, claims: dict[str, Any], user: Any, user_claim: str,
                     groups: Groups) -> dict[str, Any]:
    """What the session keeps of a sign-in, and what access rules read (policies: groups, roles, email, tid,
    provider, auth_time, acrs)."""
    roles = claims.get("roles")
    acrs = claims.get("acrs")
    auth_time = claims.get("auth_time")
    return {"user": user_claim, "email": user.email, "name": user.display_name, "tid": claims.get("tid"),
            "groups": groups.ids, "groups_source": groups.source, "provider": provider.name,
            "roles": [str(r) for r in roles][:200] if isinstance(roles, list) else [],
            "acrs": [str(a) for a in acrs][:99] if isinstance(acrs, list) else [],
            "auth_time": int(auth_time) if isinstance(auth_time, int | float) and not isinstance(auth_time, bool)
            else None, "signed_in_at": time.time()}


def unverified_claims(raw: str | None) -> dict[str, Any]:
    """The payload without checking anything: only for diagnostics of a refused token."""
    try:
        payload = (raw or "").split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return data if isinstance(data, dict) else {}
    except (IndexError, ValueError):
        return {}


def _checks(claims: dict[str, Any], client: ProviderClient | None, failed: str | None) -> dict[str, Any]:
    def short(value: Any) -> str:
        text = json.dumps(value) if not isinstance(value, str) else value
        return text if len(text) <= 120 else text[:117] + "..."

    moment = now()
    checks: dict[str, Any] = {"failed": failed}
    if claims:
        checks.update({"issuer": short(claims.get("iss")), "tenant": short(claims.get("tid")),
                       "audience": short(claims.get("aud")),
                       "nonce": "matched" if not failed else "mismatch" if failed == "nonce" else "not reached"})
        if isinstance(claims.get("iat"), int | float):
            checks["clock_skew_seconds"] = round(claims["iat"] - moment, 1)
        if "acrs" in claims:
            checks["acrs"] = short(claims["acrs"])
        for name in ("iat", "nbf", "exp", "auth_time"):
            if isinstance(claims.get(name), int | float):
                checks[name] = int(claims[name])
    if client is not None:
        checks["expected_audience"] = client.client_id
        if client.tenant_id:
            checks["expected_tenant"] = client.tenant_id
    return checks


def record_attempt(provider: str, outcome: str, reason: str, *, username: str = "", checks: dict | None = None,
                   groups_source: str = "", reference: str | None = None) -> str:
    reference = reference or secrets.token_hex(4).upper()
    db.session.add(SignInAttempt(
        reference=reference, provider=provider, username=username[:320], outcome=outcome, reason=reason[:1024],
        checks=checks or {}, groups_source=groups_source, redirect_uri=callback_uri(),
        forwarded={name: request.headers[name][:256] for name in FORWARDED_HEADERS if name in request.headers}))
    audit.record("sign_in.sso", username or provider, outcome=outcome, actor=username or "anonymous",
                 provider=provider, reason=reason[:200], reference=reference)
    if secrets.randbelow(100) == 0:  # keep 90 days of diagnostics
        db.session.execute(delete(SignInAttempt).where(SignInAttempt.at < utcnow() - timedelta(days=90)))
    db.session.commit()
    metrics.sign_in(provider, outcome)
    return reference


def failure(provider: str, check: str, message: str, *, status: int = 400, claims: dict | None = None,
            client: ProviderClient | None = None, kind: str = "error") -> tuple[str, int]:
    """Show an error page with a reference id; audited; nothing of the half-done sign-in is kept."""
    db.session.rollback()
    claims = claims or {}
    username = str(claims.get("preferred_username") or claims.get("email") or "")
    reference = record_attempt(provider, "failure", f"{check}: {message}", username=username,
                               checks=_checks(claims, client, check))
    return render_template("sso/error.html", message=message, reference=reference, kind=kind), status


@bp.route("/sso/callback", methods=["GET", "POST"])
@csrf.exempt  # a form_post from the provider: protected by the single-use state and the PKCE verifier
def sso_callback() -> Response | tuple[str, int]:
    params = request.form if request.method == "POST" else request.args
    state = params.get("state", "")
    flow = PENDING.take(state) if len(state) <= 128 else None
    if flow is None:
        return failure("unknown", "state", "This sign-in link is unknown, expired or was already used "
                                           "(state mismatch). Start again from the sign-in page.")
    provider = db.session.get(SsoProvider, flow["provider_id"])
    if provider is None:
        return failure("unknown", "state", "The sign-in service of this sign-in was removed.")
    binding = request.cookies.get(FLOW_COOKIE)
    cookie_required = not (request.method == "POST" and not request.is_secure)
    if (binding or cookie_required) and _binding_hash(binding or "") != flow["binding"]:
        return failure(provider.name, "state", "This sign-in was started in another browser (state mismatch). "
                                               "Start again from the sign-in page.")
    if params.get("error"):
        error = str(params["error"])[:64]
        return failure(provider.name, "provider", f"The sign-in service did not sign you in ({error}).",
                       status=401)
    code = params.get("code")
    if not code or len(code) > 4096:
        return failure(provider.name, "code", "The sign-in service sent no authorization code.")
    try:
        client = client_for(provider)
        tokens = client.redeem(flow["redirect_uri"], code, flow["verifier"])
    except ProviderError as exc:
        return failure(provider.name, exc.check, str(exc), status=502)
    raw = str(tokens["id_token"])
    settings = current_settings()
    try:
        claims = client.validate(raw, nonce=flow["nonce"], leeway=settings.clock_leeway_seconds)
    except IdTokenError as exc:
        return failure(provider.name, exc.check, str(exc), claims=unverified_claims(raw), client=client)
    step_up = flow.get("step_up")
    if step_up:
        problem = step_up_problem(step_up, claims, settings.clock_leeway_seconds)
        if problem is not None:
            return failure(provider.name, problem[0], problem[1], status=403, claims=claims, client=client,
                           kind="step_up")
    issuer = client.metadata.issuer
    try:
        user = resolve_user(provider, claims, issuer=str(claims.get("iss") or issuer), create=settings.create_users)
        groups = groups_of(provider, claims, ttl_minutes=settings.group_cache_minutes)
    except SignInRefused as exc:
        return failure(provider.name, exc.kind, str(exc), status=403, claims=claims, client=client, kind=exc.kind)
    if step_up and user.id != step_up.get("user_id"):
        return failure(provider.name, "step_up", "You confirmed your sign-in with another account than the one "
                       "signed in here. Access is refused; sign in again with the account you want to use.",
                       status=403, claims=claims, client=client, kind="step_up")
    user_claim = str(claims.get(provider.user_claim) or claims.get("preferred_username") or user.email)
    renew_session()
    login_user(user)
    session["sso"] = {"provider": provider.name, "sid": claims.get("sid"), "sub": str(claims["sub"]),
                      "login_hint": claims.get("login_hint"), "id_token": secret_box().encrypt(raw)}
    session["identity"] = session_identity(provider, claims, user, user_claim, groups)
    if step_up:
        session[STEP_UP_KEY] = {"url": flow.get("return_url"), "at": now()}
    record_attempt(provider.name, "success", "step-up" if step_up else "signed in", username=user.email,
                   checks=_checks(claims, client, None), groups_source=groups.source)
    response = redirect(flow.get("return_url") or flow["next_path"] or url_for("sso.home"))
    response.delete_cookie(FLOW_COOKIE, path="/sso/callback")
    return response
