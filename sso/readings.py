"""What the sign-in side shows Prometheus at scrape time (observability.metrics.add_reading)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from core.extensions import db
from sso.sessions import RedisStore, _dt, store


def active_sessions() -> Iterator[Metric]:
    """Signed-in sessions not past their absolute expiry (both stores)."""
    backend = store()
    if isinstance(backend, RedisStore):  # one key per session, expiring with it
        count = sum(1 for _ in backend.redis.scan_iter(match=backend.prefix + "s:*", count=1000))
    else:
        table = backend.table
        count = db.session.scalar(select(func.count()).select_from(table).where(
            table.c.user_id.is_not(None), table.c.expires_at > _dt(time.time()))) or 0
    yield GaugeMetricFamily("gateway_active_sessions", "Signed-in sessions (server-side) not yet expired.",
                            value=count)
