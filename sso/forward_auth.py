"""Forward auth for nginx `auth_request` and Traefik ForwardAuth: `GET /auth/verify`, `/auth/start`, JWKS.

`/auth/verify` is on the hot path of every protected request: it reads the session (one lookup by primary key
or one Redis GET), checks the allow-lists, and answers with identity headers and a short-lived ES256 assertion,
re-signed only when the cached one is about to expire.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from flask import Response, current_app, jsonify, redirect, request, session, url_for
from joserfc import jwt

from core.extensions import limiter
from sso import bp
from sso.settings import current_settings
from sso.signing_keys import ASSERTION_LIFETIME, JWKS_MAX_AGE, active_key, published_jwks

ASSERTION_REUSE = 60  # re-sign when less than this is left
_assertions: dict[tuple[str, str], tuple[float, str]] = {}


def issuer() -> str:
    return current_app.config.get("PUBLIC_BASE_URL") or request.host_url.rstrip("/")


def assertion(identity: dict[str, Any], user_id: str, audience: str) -> str:
    record = getattr(session, "record", None)
    cache_key = (record.id_hash if record is not None else user_id, audience)
    cached = cached_assertion(cache_key)
    if cached:
        return cached
    moment = time.time()
    signer = active_key()
    claims = {"iss": issuer(), "sub": user_id, "email": identity.get("email"), "name": identity.get("name"),
              "preferred_username": identity.get("user"), "groups": identity.get("groups") or [],
              "iat": int(moment), "exp": int(moment) + ASSERTION_LIFETIME}
    if identity.get("tid"):
        claims["tid"] = identity["tid"]
    if audience:
        claims["aud"] = audience
    token = jwt.encode({"alg": "ES256", "kid": signer.kid, "typ": "JWT"}, claims, signer.key)
    if len(_assertions) > 10000:
        _assertions.clear()
    _assertions[cache_key] = (moment + ASSERTION_LIFETIME, token)
    return token


def cached_assertion(cache_key: tuple[str, str]) -> str | None:
    cached = _assertions.get(cache_key)
    if cached and cached[0] - time.time() > ASSERTION_REUSE:
        return cached[1]
    return None


def _split(value: str | None) -> list[str]:
    return [part.strip().lower() for part in (value or "").split(",") if part.strip()]


def allowed(identity: dict[str, Any], rules: dict[str, list[str]]) -> bool:
    """Each list given must be satisfied (any of its entries); no lists = any signed-in user."""
    email = str(identity.get("email") or "").lower()
    if rules.get("emails") and email not in rules["emails"]:
        return False
    if rules.get("domains") and email.rpartition("@")[2] not in rules["domains"]:
        return False
    if rules.get("groups"):
        groups = {str(g).lower() for g in identity.get("groups") or []}  # unknown groups never match
        if groups.isdisjoint(rules["groups"]):
            return False
    return True


def rules_from(args: Mapping[str, str], policies: dict[str, Any]) -> dict[str, list[str]] | None:
    """The allow-lists from the query, or from `policy=<name>` in the settings (None: unknown policy)."""
    rules = {"groups": _split(args.get("allowed_groups")), "emails": _split(args.get("allowed_emails")),
             "domains": _split(args.get("allowed_domains"))}
    name = args.get("policy")
    if name:
        policy = policies.get(name)
        if not isinstance(policy, dict):
            return None
        for kind in ("groups", "emails", "domains"):
            rules[kind] += [str(item).strip().lower() for item in policy.get(kind) or [] if str(item).strip()]
    return rules


def requested_rules() -> dict[str, list[str]] | None:
    args = request.args
    return rules_from(args, current_settings().policies if args.get("policy") else {})


def host_allowed(host: str, domains: list[str] | None = None) -> bool:
    host = host.lower().rstrip(".")
    for entry in current_app.config.get("ALLOWED_REDIRECT_DOMAINS") or [] if domains is None else domains:
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


def safe_return_url(url: str | None, domains: list[str] | None = None) -> str | None:
    """An absolute http(s) URL whose host is in ALLOWED_REDIRECT_DOMAINS, else None."""
    if not url or len(url) > 4096 or any(ch in url for ch in "\\\r\n\t "):
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    return url if host_allowed(parts.hostname, domains) else None


def original_url_from(headers: Mapping[str, str], domains: list[str] | None = None) -> str | None:
    """What the visitor asked the proxy for: X-Original-URL (nginx) or X-Forwarded-Proto/Host/Uri (Traefik)."""
    url = headers.get("X-Original-URL")
    if not url and headers.get("X-Forwarded-Host"):
        proto = headers.get("X-Forwarded-Proto", "https").split(",")[0].strip()
        host = headers["X-Forwarded-Host"].split(",")[0].strip()
        url = f"{proto}://{host}{headers.get('X-Forwarded-Uri', '/')}"
    return safe_return_url(url, domains)


def original_url() -> str | None:
    return original_url_from(request.headers)


def _header_value(value: Any) -> str:
    text = str(value or "")
    return text if text.isascii() else quote(text, safe=" @.,;:/+-_()'")


def identity_headers(identity: dict[str, Any], token: str) -> list[tuple[str, str]]:
    return [("X-Auth-Request-User", _header_value(identity.get("user"))),
            ("X-Auth-Request-Email", _header_value(identity.get("email"))),
            ("X-Auth-Request-Name", _header_value(identity.get("name"))),
            ("X-Auth-Request-Groups", ",".join(str(g) for g in identity.get("groups") or [])),
            ("X-Auth-Request-Assertion", token), ("Cache-Control", "no-store")]


@bp.get("/auth/verify")
@limiter.exempt  # the hot path of every protected request; nothing to guess here
def verify() -> Response:
    identity = session.get("identity") if session.get("_user_id") else None
    if not identity:
        if request.args.get("redirect") == "1":
            target = original_url()
            query = {"rd": target} if target else {}
            return redirect(issuer() + url_for("sso.forward_start") + ("?" + urlencode(query) if query else ""))
        response = jsonify(error="not signed in")
        response.status_code = 401
        response.headers["Cache-Control"] = "no-store"
        return response
    rules = requested_rules()
    if rules is None or not allowed(identity, rules):
        response = jsonify(error="forbidden")
        response.status_code = 403
        response.headers["Cache-Control"] = "no-store"
        return response
    audience = (urlsplit(original_url() or "").hostname or "")
    token = assertion(identity, str(session["_user_id"]), audience)
    return Response(status=200, headers=identity_headers(identity, token))


@bp.get("/auth/start")
def forward_start() -> Response:
    """Sign in (if needed), then go back to the protected app's URL when its host is allowed."""
    target = safe_return_url(request.args.get("rd"))
    if session.get("_user_id") and session.get("identity"):
        return redirect(target or url_for("sso.home"))
    next_path = url_for("sso.forward_start", rd=target) if target else None
    return redirect(url_for("sso.login", next=next_path) if next_path else url_for("sso.login"))


@bp.get("/.well-known/jwks.json")
@limiter.exempt
def jwks() -> Response:
    response = jsonify(keys=published_jwks())
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return response
