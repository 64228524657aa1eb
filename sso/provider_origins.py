"""The Content-Security-Policy hook that lets pages send people to generic providers (their sign-out endpoints)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import current_app
from werkzeug.wrappers import Response

from core.extensions import db
from core.web import content_security_policy
from sso import bp
from sso.models import SsoProvider


@bp.after_app_request
def provider_form_targets(response: Response) -> Response:
    """Let forms redirect to generic providers too (sign-out goes to their end_session_endpoint).

    Runs before core.web's header hook, which keeps a Content-Security-Policy already set.
    """
    if "Content-Security-Policy" in response.headers or response.mimetype != "text/html":
        return response
    origins = generic_provider_origins()
    if origins:
        response.headers["Content-Security-Policy"] = content_security_policy(current_app, origins)
    return response


def generic_provider_origins() -> tuple[str, ...]:
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
