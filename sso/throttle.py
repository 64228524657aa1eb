"""Per-account sign-in throttle with back-off, in storage every process shares (issue 10, point 9).

The per-IP limit (Flask-Limiter on /login) lives in memory per process without REDIS_URL, and an attacker spreading
guesses over many addresses never meets it. This limiter counts failed password sign-ins per submitted e-mail
address (existing or not, so it tells nothing about which accounts exist), in Redis with REDIS_URL, else in the
`sign_in_throttle` table, so every worker and host sees the same count.

Policy: FREE_FAILURES failed attempts are free; each further one locks the account for a delay that doubles
(1 s, 2 s, 4 s, ... up to MAX_DELAY). A WINDOW without failures, or a successful sign-in, starts again from zero.
While locked, an attempt is refused before any password is checked (and is not counted).
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from flask import current_app
from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from werkzeug.security import check_password_hash, generate_password_hash

from core.extensions import db
from sso.models import SignInThrottle

FREE_FAILURES = 5
MAX_DELAY = 15 * 60
WINDOW = 15 * 60


def account_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def delay_after(failures: int) -> float:
    """Seconds an account stays locked after its `failures`-th failure in a row (0 while still free)."""
    if failures <= FREE_FAILURES:
        return 0.0
    return float(min(MAX_DELAY, 2 ** min(failures - FREE_FAILURES - 1, 20)))


@cache
def _dummy_hash() -> str:
    return generate_password_hash("not-a-password-anyone-has")


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password with the same work whether the account exists, has a password, or not: an unknown
    e-mail is hashed against a dummy hash (else its answer came ~10 times sooner and told which e-mails exist)."""
    if password_hash:
        return check_password_hash(password_hash, password)
    check_password_hash(_dummy_hash(), password)
    return False


class DatabaseThrottle:
    """The embedded default: one `sign_in_throttle` row per account that failed lately (upserts on its own
    connection, committed at once, so a caller's transaction neither delays nor rolls it back)."""

    def __init__(self) -> None:

        self.table = SignInThrottle.__table__

    def retry_after(self, key: str) -> float:
        with db.engine.connect() as connection:
            locked = connection.execute(select(self.table.c.locked_until)
                                        .where(self.table.c.key == key)).scalar()
        if locked is None:
            return 0.0
        if locked.tzinfo is None:
            locked = locked.replace(tzinfo=UTC)
        return max(0.0, locked.timestamp() - time.time())

    def failed(self, key: str) -> float:
        now = datetime.now(UTC)
        table = self.table
        with db.engine.begin() as connection:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            insert = dialect.insert(table).values(key=key, failures=1, last_failure_at=now)
            fresh = table.c.last_failure_at < now - timedelta(seconds=WINDOW)
            failures = connection.execute(insert.on_conflict_do_update(
                index_elements=["key"],
                set_={"failures": case((fresh, 1), else_=table.c.failures + 1), "last_failure_at": now},
            ).returning(table.c.failures)).scalar_one()
            delay = delay_after(failures)
            if delay:
                connection.execute(update(table).where(table.c.key == key)
                                   .values(locked_until=now + timedelta(seconds=delay)))
            if failures == 1:  # now and then: forget accounts whose last failure is past the window
                connection.execute(delete(table).where(table.c.last_failure_at < now - timedelta(seconds=WINDOW),
                                                       table.c.key != key))
        return delay

    def succeeded(self, key: str) -> None:
        with db.engine.begin() as connection:
            connection.execute(delete(self.table).where(self.table.c.key == key))


class RedisThrottle:
    """With REDIS_URL: a failure counter (expires WINDOW after the last failure) and a lock key per account."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = f"{prefix}:throttle:"

    def retry_after(self, key: str) -> float:
        left = int(self.redis.pttl(self.prefix + "l:" + key))
        return left / 1000 if left > 0 else 0.0

    def failed(self, key: str) -> float:
        pipe = self.redis.pipeline()
        pipe.incr(self.prefix + "f:" + key)
        pipe.expire(self.prefix + "f:" + key, WINDOW)
        failures = int(pipe.execute()[0])
        delay = delay_after(failures)
        if delay:
            self.redis.set(self.prefix + "l:" + key, "1", px=int(delay * 1000))
        return delay

    def succeeded(self, key: str) -> None:
        self.redis.delete(self.prefix + "f:" + key, self.prefix + "l:" + key)


def throttle() -> Any:
    app = current_app
    found = app.extensions.get("gw_sign_in_throttle")
    if found is None:
        url = app.config.get("REDIS_URL")
        found = RedisThrottle(url, app.config.get("REDIS_PREFIX", "gw")) if url else DatabaseThrottle()
        app.extensions["gw_sign_in_throttle"] = found
    return found
