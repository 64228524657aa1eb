"""Who is calling the API: `Authorization: Bearer <API key>`, or the browser session (CSRF-checked when unsafe)."""

from __future__ import annotations

from datetime import timedelta

from flask import g, request
from flask_login import current_user
from flask_wtf.csrf import ValidationError, validate_csrf
from sqlalchemy import select, update

from core.api_keys import ApiKey
from core.extensions import db
from core.models import utcnow
from datasources.service import Caller

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per key per minute for "last used"


class AuthError(Exception):
    def __init__(self, status: int, code: str, message: str, key: ApiKey | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.key = key  # a known key that may not be used (revoked, expired, user disabled)


def authenticate() -> Caller:
    """The caller of this request, or `AuthError` (401 for a missing/bad key, 400 for a failed CSRF check)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthError(401, "unauthenticated", "Send the API key as 'Authorization: Bearer <key>'.")
        return _by_key(key.strip())
    if current_user.is_authenticated:
        if request.method not in SAFE_METHODS:
            try:
                validate_csrf(request.headers.get("X-CSRFToken", ""))
            except ValidationError:
                raise AuthError(400, "csrf_failed", "Send the page's CSRF token in the X-CSRFToken header, or use "
                                "an API key.") from None
        return Caller(current_user._get_current_object())
    raise AuthError(401, "unauthenticated", "Send an API key as 'Authorization: Bearer <key>' (an Administrator "
                    "creates one under Administration > API keys), or sign in.")


def _by_key(key: str) -> Caller:
    prefix = ApiKey.split(key)
    row = db.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix)) if prefix else None
    if row is None or not row.matches(key):
        raise AuthError(401, "invalid_api_key", "This API key is not valid. Check it was copied whole.")
    if row.status == "revoked":
        raise AuthError(401, "api_key_revoked", "This API key was revoked. Ask an Administrator for a new one.", row)
    if row.status == "expired":
        raise AuthError(401, "api_key_expired", "This API key has expired. Ask an Administrator for a new one.",
                        row)
    if not row.user.active:
        raise AuthError(401, "user_inactive", "The user this API key belongs to is disabled.", row)
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        db.session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
        db.session.commit()
    g.api_key_id = row.id
    return Caller(row.user, row)
