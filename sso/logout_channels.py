"""Single sign-out from the provider's side: Entra's front-channel logout URL and OpenID Connect Back-Channel
Logout (a validated `logout_token`) for generic providers."""

from __future__ import annotations

import logging
import time

import requests
from flask import Response, request, session
from joserfc import jws, jwt
from joserfc.errors import JoseError

from core import audit
from core.extensions import csrf, db
from oidc.id_tokens import audience_problem
from sso import bp
from sso.models import SsoProvider
from sso.oidc import ProviderError, client_for, configured_issuer
from sso.sessions import store

log = logging.getLogger(__name__)
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@bp.get("/sso/front-channel-logout")
def front_channel_logout() -> Response:
    """The provider GETs this (in an iframe) when the user signs out elsewhere: end the matching sessions.

    Any site can make a browser GET this URL, so a call without `sid` does nothing. With `iss`, only the provider
    whose issuer it is counts (matched without asking any provider); without `iss`, only the browser's own session
    ends, and only when its provider does not send `iss` (Entra always does).
    """
    sid = (request.args.get("sid") or "")[:128]
    issuer = (request.args.get("iss") or "")[:512].rstrip("/")
    ended = 0
    if sid:
        providers = _providers_by_issuer(issuer) if issuer else []
        for provider in providers:
            ended += store().end_by_idp(provider.name, sid=sid)
        own = session.get("sso") or {}
        if own.get("sid") == sid and (any(p.name == own.get("provider") for p in providers)
                                      or (not issuer and not _sends_issuer(own.get("provider")))):
            session.clear()  # the browser's own session, when the call carries its cookie
            ended += 1
    if ended:
        audit.record("sign_out.front_channel", sid, actor="identity provider", sessions=ended)
        db.session.commit()
    response = Response("signed out" if ended else "nothing to sign out", status=200, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors *"
    response.headers["X-Frame-Options"] = "ALLOWALL"
    return response


def _providers_by_issuer(issuer: str) -> list[SsoProvider]:
    """The providers whose configured issuer is `issuer` (no I/O: a slow provider cannot hold this up)."""
    return [provider for provider in db.session.scalars(db.select(SsoProvider))
            if (configured_issuer(provider) or "").rstrip("/") == issuer]


def _sends_issuer(name: str | None) -> bool:
    """Whether the provider puts `iss` in its front-channel logout calls (then a call without it is not its)."""
    provider = db.session.scalar(db.select(SsoProvider).filter_by(name=name)) if name else None
    if provider is None or provider.kind == SsoProvider.OFFICE365:
        return True
    try:
        return client_for(provider).document().get("frontchannel_logout_session_supported") is True
    except ProviderError:
        return True  # unknown: refuse rather than trust a call that may not come from the provider


@bp.post("/sso/back-channel-logout/<name>")
@csrf.exempt  # server-to-server, authenticated by the signed logout_token
def back_channel_logout(name: str) -> tuple[Response, int]:
    provider = db.session.scalar(db.select(SsoProvider).filter_by(name=name))
    raw = request.form.get("logout_token", "")
    if provider is None or not raw or len(raw) > 16384:
        return _refuse("invalid_request", "unknown provider or no logout_token")
    try:
        client = client_for(provider)
        header = jws.extract_compact(raw.encode()).protected
        algorithms = client.algorithms()
        if header.get("alg") not in algorithms:
            return _refuse("invalid_request", "algorithm not allowed")
        claims = dict(jwt.decode(raw, client.metadata.key_set(header.get("kid")), algorithms=algorithms).claims)
        issuer = client.metadata.issuer
    except (ProviderError, JoseError, ValueError, requests.RequestException) as exc:
        return _refuse("invalid_request", f"logout_token not valid ({type(exc).__name__})")
    events = claims.get("events")
    problems = [
        claims.get("iss") != issuer and "iss",
        audience_problem(claims, client.client_id) is not None and "aud",
        (not isinstance(claims.get("iat"), int | float) or abs(claims["iat"] - time.time()) > 300) and "iat",
        not (isinstance(events, dict) and BACKCHANNEL_EVENT in events) and "events",
        "nonce" in claims and "nonce",
        not (claims.get("sid") or claims.get("sub")) and "sid/sub",
    ]
    failed = [p for p in problems if p]
    if failed:
        return _refuse("invalid_request", f"logout_token failed: {', '.join(failed)}")
    ended = store().end_by_idp(provider.name, sid=claims.get("sid"), sub=None if claims.get("sid") else
                               str(claims.get("sub")))
    audit.record("sign_out.back_channel", provider.name, actor="identity provider", sessions=ended)
    db.session.commit()
    response = Response("", status=200)
    response.headers["Cache-Control"] = "no-store"
    return response, 200


def _refuse(error: str, description: str) -> tuple[Response, int]:
    log.info("back-channel logout refused: %s", description)
    from flask import jsonify

    response = jsonify(error=error, error_description=description)
    response.headers["Cache-Control"] = "no-store"
    return response, 400
