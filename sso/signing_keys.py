"""The gateway's ES256 keys for forward-auth assertions: made on first use, rotated without a gap.

A rotated-in key is published in the JWKS at once but signs only from its `activates_at`, so apps that cache the
JWKS (it says max-age=300) hold it before they meet it. Older keys stay published until pruned, which is allowed
once every assertion they signed has expired. Each process re-reads the keys every SSO_KEYS_CACHE_SECONDS, so a
rotation by the CLI (or another host) reaches every process well before the new key activates.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from joserfc.jwk import ECKey

from core.crypto import secret_box
from core.extensions import db
from core.models import utcnow
from sso.models import SigningKey

JWKS_MAX_AGE = 300  # seconds apps may cache /.well-known/jwks.json
DEFAULT_ACTIVATE_IN = 600  # > JWKS_MAX_AGE + the process cache
ASSERTION_LIFETIME = 120
_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    key: ECKey
    public: dict[str, Any]
    activates_at: datetime


def _activation(row: SigningKey) -> datetime:
    return row.activates_at or row.created_at


def _new_row(activates_at: datetime) -> SigningKey:
    key = ECKey.generate_key("P-256", private=True)
    kid = secrets.token_hex(8)
    public = {**key.as_dict(private=False), "kid": kid, "use": "sig", "alg": "ES256"}
    return SigningKey(kid=kid, private_key=secret_box().encrypt(key.as_pem(private=True).decode()),
                      public_jwk=public, activates_at=activates_at)


def _rows() -> list[SigningKey]:
    return list(db.session.scalars(db.select(SigningKey).order_by(SigningKey.created_at.desc())))


def loaded_keys() -> list[LoadedKey]:
    """Every published key, newest first (the first one is made and stored, encrypted, on first use)."""
    cached = current_app.extensions.get("sso_signing_keys")
    if cached and cached[0] > time.monotonic():
        return cached[1]
    with _lock:
        rows = _rows()
        if not rows:
            db.session.add(_new_row(utcnow()))
            db.session.commit()
            rows = _rows()
        keys = [LoadedKey(row.kid, ECKey.import_key(secret_box().decrypt(row.private_key)), row.public_jwk,
                          _activation(row)) for row in rows]
        ttl = float(current_app.config.get("SSO_KEYS_CACHE_SECONDS", 60))
        current_app.extensions["sso_signing_keys"] = (time.monotonic() + ttl, keys)
        return keys


def forget_keys() -> None:
    current_app.extensions.pop("sso_signing_keys", None)


def active_key(now: datetime | None = None) -> LoadedKey:
    """The key that signs now: the newest one already active (or, if none is yet, the first to become so)."""
    now = now or utcnow()
    keys = loaded_keys()
    active = [k for k in keys if k.activates_at <= now]
    return max(active, key=lambda k: k.activates_at) if active else min(keys, key=lambda k: k.activates_at)


def key_states() -> list[tuple[str, datetime, str]]:
    """(kid, signs from, "signing" | "next" | "retired") of every published key, newest first, read afresh."""
    forget_keys()
    now = utcnow()
    current = active_key(now).kid
    return [(k.kid, k.activates_at, "signing" if k.kid == current else "next" if k.activates_at > now else "retired")
            for k in loaded_keys()]


def published_jwks() -> list[dict[str, Any]]:
    return [k.public for k in loaded_keys()]


def rotate(activate_in: int = DEFAULT_ACTIVATE_IN) -> SigningKey:
    """Add a key that signs from `activate_in` seconds on (published at once). The caller commits."""
    row = _new_row(utcnow() + timedelta(seconds=activate_in))
    db.session.add(row)
    forget_keys()
    return row


def prunable(now: datetime | None = None) -> list[SigningKey]:
    """Keys older than the active one, once the active one has signed longer than an assertion lives."""
    now = now or utcnow()
    rows = _rows()
    active = [r for r in rows if _activation(r) <= now]
    if not active:
        return []
    current = max(active, key=_activation)
    if now < _activation(current) + timedelta(seconds=ASSERTION_LIFETIME + 60):  # + clock skew of the apps
        return []
    return [r for r in rows if _activation(r) < _activation(current)]


def prune(now: datetime | None = None) -> list[str]:
    """Delete the prunable keys; returns their kids. The caller commits."""
    gone = prunable(now)
    for row in gone:
        db.session.delete(row)
    forget_keys()
    return [row.kid for row in gone]
