"""API keys: created by an Administrator for a user, shown once, stored only as a SHA-256 hash.

A key reads `gw_<prefix>_<secret>`; the prefix (not secret) finds the row, the hash of the whole key proves it.
The secret has 256 bits of entropy, so a fast hash is enough (there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.extensions import db
from core.models import User, UTCDateTime, utcnow

KEY_PREFIX = "gw_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(db.Model):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(320))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    user: Mapped[User] = relationship(lazy="joined")

    @classmethod
    def issue(cls, user: User, name: str, *, expires_at: datetime | None, created_by: str) -> tuple[ApiKey, str]:
        """A new key row and the key itself (to show once; only its hash is kept)."""
        prefix = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        row = cls(prefix=prefix, key_hash=hash_key(key), name=name, user=user, expires_at=expires_at,
                  created_by=created_by)
        return row, key

    @staticmethod
    def split(key: str) -> str | None:
        """The prefix of a well-formed key, else None."""
        if not key.startswith(KEY_PREFIX):
            return None
        prefix, sep, rest = key[len(KEY_PREFIX):].partition("_")
        return prefix if sep and len(prefix) == 8 and rest else None

    def matches(self, key: str) -> bool:
        return hmac.compare_digest(self.key_hash, hash_key(key))

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"

    @property
    def label(self) -> str:
        return f"{KEY_PREFIX}{self.prefix}…"

    def __repr__(self) -> str:  # never the hash
        return f"<ApiKey {self.prefix} {self.name}>"
