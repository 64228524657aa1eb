"""Single-use pending flows: what a redirect to an identity provider must find again at its callback.

Two kinds use it: the SSO sign-in (sso/signin.py: nonce, PKCE verifier, browser binding, return URL) and a
datasource's authorization (datasources/authorization.py: MSAL's auth-code flow). Kept server-side so any worker
can finish the flow and no cookie has to survive a cross-site trip. Each entry is

- encrypted with the token keys (core.crypto): it holds PKCE verifiers and nonces; its key is kept as a SHA-256;
- expiring: `take` never returns an entry past its lifetime, and `put` drops the expired ones;
- taken once across processes: `take` is one `DELETE ... RETURNING` (PostgreSQL, SQLite >= 3.35), and the
  database serialises deletes of one row, so of two concurrent takers exactly one gets it, the other nothing.

An entry that does not decrypt or parse (a dropped key, a tampered row) is taken as absent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert

from core.crypto import InvalidToken, secret_box
from core.extensions import db
from core.models import PendingFlowEntry, utcnow

MAX_KEY_LENGTH = 512


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class PendingFlows:
    """The pending flows of one kind (e.g. "sso_sign_in"), each valid for `lifetime`."""

    kind: str
    lifetime: timedelta

    def put(self, key: str, payload: dict[str, Any]) -> None:
        """Keep `payload` (JSON-serialisable) under `key` in the caller's transaction: the caller commits."""
        now = utcnow()
        table = PendingFlowEntry.__table__
        db.session.execute(delete(table).where(table.c.expires_at <= now))
        db.session.execute(insert(table).values(
            kind=self.kind, key_hash=key_hash(key), payload=secret_box().encrypt(json.dumps(payload)),
            created_at=now, expires_at=now + self.lifetime))

    def take(self, key: str) -> dict[str, Any] | None:
        """The payload under `key`, removed from the store and committed at once (single use, whatever the caller
        does next). None when unknown, already taken, expired or unreadable."""
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        table = PendingFlowEntry.__table__
        row = db.session.execute(
            delete(table).where(table.c.kind == self.kind, table.c.key_hash == key_hash(key))
            .returning(table.c.payload, table.c.expires_at)).first()
        db.session.commit()
        if row is None or row.expires_at <= utcnow():
            return None
        try:
            payload = json.loads(secret_box().decrypt(row.payload))
        except (InvalidToken, ValueError):
            return None
        return payload if isinstance(payload, dict) else None
