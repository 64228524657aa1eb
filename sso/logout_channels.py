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
from sso import bp
from sso.models import SsoProvider
from sso.oidc import ProviderError, client_for
from sso.sessions import store

log = logging.getLogger(__name__)
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@bp.get("/sso/front-channel-logout")
def front_channel_logout() -> Response:
    """Entra GETs this (in an iframe or server-side) when the user signs out elsewhere: end the matching sessions."""
    sid = (request.args.get("sid") or "")[:128]
    issuer = (request.args.get("iss") or "")[:512]
    ended = 0
    if sid:
        for provider in db.session.scalars(db.select(SsoProvider)):
            try:
                expected = client_for(provider).metadata.issuer
            except (ProviderError, requests.RequestException, ValueError, KeyError):
                continue
            if not issuer or issuer == expected:
                ended += store().end_by_idp(provider.name, sid=sid)
    if session.get("sso") and (not sid or session["sso"].get("sid") == sid):
        session.clear()  # the browser's own session, when the call carries its cookie
        ended += 1
    if ended:
        audit.record("sign_out.front_channel", sid, actor="identity provider", sessions=ended)
    response = Response("signed out", status=200, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors *"
    response.headers["X-Frame-Options"] = "ALLOWALL"
    return response


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
    audience = claims.get("aud")
    events = claims.get("events")
    problems = [
        claims.get("iss") != issuer and "iss",
        not (audience == client.client_id or (isinstance(audience, list) and client.client_id in audience)) and "aud",
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
    response = Response("", status=200)
    response.headers["Cache-Control"] = "no-store"
    return response, 200


def _refuse(error: str, description: str) -> tuple[Response, int]:
    log.info("back-channel logout refused: %s", description)
    from flask import jsonify

    response = jsonify(error=error, error_description=description)
    response.headers["Cache-Control"] = "no-store"
    return response, 400
