"""Cross-cutting web concerns: security headers, no caching of authenticated answers, health checks, proxy
trust."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request, session
from sqlalchemy import text
from werkzeug.middleware.proxy_fix import ProxyFix

from core import input as input_checks
from core.extensions import db

health = Blueprint("health", __name__)

# Everything under these paths is private (lists of people, keys, sessions), whoever asks.
PRIVATE_PATHS = ("/admin", "/api", "/sessions")


@health.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@health.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report any failure as not ready
        db.session.rollback()
        checks["database"] = f"error: {type(exc).__name__}"
    redis_url = current_app.config.get("REDIS_URL")
    if redis_url:
        import redis

        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2).ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


def content_security_policy(app: Flask, extra_form_targets: tuple[str, ...] = ()) -> str:
    """No inline script; forms may post (and redirect) only to us and to the identity providers.

    `extra_form_targets`: origins of generic OpenID providers (sign-out posts to us, then redirects there).
    """
    authority = urlparse(app.config["O365_AUTHORITY_HOST"])
    form_targets = " ".join(("'self'", f"{authority.scheme}://{authority.netloc}", *extra_form_targets))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"font-src 'self'; connect-src 'self'; form-action {form_targets}; frame-ancestors 'none'; "
        "base-uri 'self'; object-src 'none'"
    )


def is_authenticated_response() -> bool:
    """Whether this answer was made for a signed-in user or an API key, or lies under a private path.

    Static files are the same for everyone and stay cacheable.
    """
    if request.endpoint is not None and request.endpoint.rsplit(".", 1)[-1] == "static":
        return False
    if any(request.path == prefix or request.path.startswith(prefix + "/") for prefix in PRIVATE_PATHS):
        return True
    if g.get("api_key_id") is not None or session.get("_user_id"):
        return True
    user = g.get("_login_user")
    return bool(user is not None and user.is_authenticated)


def init_web(app: Flask) -> None:

    input_checks.install(app)  # 422 for text that is not valid, before any other hook
    hops = app.config["TRUSTED_PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]
    policy = content_security_policy(app)

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", policy)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if is_authenticated_response():  # no shared proxy or browser back button keeps a copy
            headers["Cache-Control"] = "no-store"
        return response

    app.register_blueprint(health)
