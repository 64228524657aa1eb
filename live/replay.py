"""Digests of the change notifications already acted on, kept for a window (LIVE_REPLAY_WINDOW_SECONDS): in Redis
with REDIS_URL (a key with a TTL), else in the `live_seen_notifications` table (expired rows deleted as new ones
come). Every process sees the same digests.

`seen_many(digests)` says when those acted on within the window were last acted on; `remember(digests, now)`
records them. live/notifications.py decides what a repeat means.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from core.extensions import db
from core.models import utcnow
from live.models import SeenNotification

DEFAULT_WINDOW = 600.0


def digest(item: dict[str, Any]) -> str:
    """The notification's identity: every field as sent (sorted keys), so any change makes another digest."""
    return hashlib.sha256(json.dumps(item, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


def window() -> timedelta:
    return timedelta(seconds=float(current_app.config.get("LIVE_REPLAY_WINDOW_SECONDS", DEFAULT_WINDOW)))


class SeenStore(Protocol):
    def seen_many(self, keys: list[str]) -> dict[str, datetime]: ...

    def remember(self, keys: list[str], now: datetime) -> None: ...


class DatabaseSeen:
    """The embedded default: one row per digest, upserted on the engine's own connection and committed at once."""

    def seen_many(self, keys: list[str]) -> dict[str, datetime]:
        """The digests among `keys` acted on within the window (one query)."""
        if not keys:
            return {}
        with db.engine.connect() as connection:
            rows = connection.execute(select(SeenNotification.digest, SeenNotification.seen_at,
                                             SeenNotification.expires_at)
                                      .where(SeenNotification.digest.in_(sorted(set(keys))))).all()
        now = utcnow()
        found = {}
        for key, seen, expires in rows:
            seen, expires = (v if v.tzinfo else v.replace(tzinfo=UTC) for v in (seen, expires))
            if expires > now:
                found[key] = seen
        return found

    def remember(self, keys: list[str], now: datetime) -> None:
        if not keys:
            return
        expires = now + window()
        table = SeenNotification.__table__
        with db.engine.begin() as connection:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            insert = dialect.insert(table).values([{"digest": key, "seen_at": now, "expires_at": expires}
                                                   for key in sorted(set(keys))])
            connection.execute(insert.on_conflict_do_update(index_elements=["digest"],
                                                            set_={"seen_at": now, "expires_at": expires}))
            connection.execute(delete(table).where(table.c.expires_at < now))


class RedisSeen:
    """With REDIS_URL: `<prefix>:live:seen:<digest>` = the time it was acted on, expiring after the window."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = f"{prefix}:live:seen:"

    def seen_many(self, keys: list[str]) -> dict[str, datetime]:
        """The digests among `keys` acted on within the window (one MGET)."""
        unique = sorted(set(keys))
        if not unique:
            return {}
        values = self.redis.mget([self.prefix + key for key in unique])
        return {key: datetime.fromtimestamp(float(value), UTC) for key, value in zip(unique, values, strict=True)
                if value}

    def remember(self, keys: list[str], now: datetime) -> None:
        if not keys:
            return
        ttl = max(1, int(window().total_seconds()))
        pipe = self.redis.pipeline()
        for key in set(keys):
            pipe.set(self.prefix + key, f"{now.timestamp():.6f}", ex=ttl)
        pipe.execute()


def store() -> SeenStore:
    app = current_app
    found = app.extensions.get("live_seen_store")
    if found is None:
        url = app.config.get("REDIS_URL")
        found = RedisSeen(url, app.config.get("REDIS_PREFIX", "gw")) if url else DatabaseSeen()
        app.extensions["live_seen_store"] = found
    return found
