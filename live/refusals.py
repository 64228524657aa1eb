"""What the notification endpoint refuses: recorded (a counter on the datasource's LiveAccess when the request
names one of its subscriptions, a bounded list an administrator reads, a log line without secrets), and budgeted
per client address.

The budget (LIVE_REFUSED_RATE_LIMIT, default 60 per minute, through Flask-Limiter's storage: memory per process, or
Redis) counts only refused requests: forged ones (unknown subscription, wrong clientState, another tenant),
malformed or too large bodies. Once an address has spent it, its requests are answered 429 before their body is
read, until the window ends. Graph never sends what is refused here, so its addresses never meet the limit and no
genuine notification is held back by a flood from elsewhere; a limit on every request would have to stay above
Graph's own bursts (10,000 changes can be 100 posts or more a minute), which would let a flood through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from limits import RateLimitItem, parse_many
from sqlalchemy import delete, func, select, update

from core.extensions import db, limiter
from core.models import utcnow
from live.models import LiveAccess, RefusedNotification

log = logging.getLogger(__name__)

KEEP = 500  # records kept (newest), for every datasource and none together
DEFAULT_LIMIT = "60 per minute"
REASONS = {
    "unknown_subscription": "unknown subscription",
    "client_state": "wrong clientState",
    "tenant": "another tenant",
    "resource": "resource does not match the subscription",
    "replayed": "replayed",
    "malformed": "malformed",
    "too_large": "body too large",
    "invalid_text": "not valid text",
}


@dataclass(frozen=True)
class Refusal:
    reason: str  # a key of REASONS
    detail: str = ""
    datasource_id: int | None = None
    subscription_id: str = ""
    count: int = 1


def record(refusals: list[Refusal], client_ip: str) -> None:
    """Keep the refusals (one row each, the oldest beyond KEEP dropped), count them on their datasources, and log
    each one. On the engine's own transaction: the caller's session state does not matter."""
    if not refusals:
        return
    now = utcnow()
    with db.engine.begin() as connection:
        connection.execute(RefusedNotification.__table__.insert(), [
            {"at": now, "datasource_id": r.datasource_id, "reason": r.reason, "detail": r.detail[:300],
             "subscription_id": r.subscription_id[:64], "client_ip": client_ip[:64], "count": r.count}
            for r in refusals])
        for refusal in refusals:
            if refusal.datasource_id is None:
                continue
            column = "notifications_replayed" if refusal.reason == "replayed" else "notifications_refused"
            connection.execute(update(LiveAccess).where(LiveAccess.datasource_id == refusal.datasource_id)
                               .values({column: getattr(LiveAccess, column) + refusal.count}))
        newest = connection.execute(select(func.max(RefusedNotification.id))).scalar() or 0
        if newest > KEEP:
            connection.execute(delete(RefusedNotification).where(RefusedNotification.id <= newest - KEEP))
    for r in refusals:
        log.warning("refused change notification: %s%s (%d item%s; datasource %s, subscription %s, from %s)",
                    REASONS.get(r.reason, r.reason), f": {r.detail}" if r.detail else "", r.count,
                    "" if r.count == 1 else "s", r.datasource_id if r.datasource_id is not None else "none",
                    r.subscription_id or "none", client_ip)


def recent(datasource_id: int, limit: int = 10) -> list[RefusedNotification]:
    """The newest refusals of this datasource and those tied to none (unknown subscriptions, bad bodies)."""
    return list(db.session.scalars(
        select(RefusedNotification)
        .where((RefusedNotification.datasource_id == datasource_id) | RefusedNotification.datasource_id.is_(None))
        .order_by(RefusedNotification.id.desc()).limit(limit)))


def unattributed_count() -> int:
    """Items refused that named no known subscription, among the kept records."""
    return int(db.session.scalar(select(func.coalesce(func.sum(RefusedNotification.count), 0))
                                 .where(RefusedNotification.datasource_id.is_(None))) or 0)


def _items() -> list[RateLimitItem]:
    return parse_many(str(current_app.config.get("LIVE_REFUSED_RATE_LIMIT", DEFAULT_LIMIT)))


def _key(client_ip: str) -> tuple[str, str]:
    return "live-refused", client_ip


def retry_after(client_ip: str) -> int:
    """Seconds until this address may post again (0: it has budget left under every limit)."""
    wait = 0
    for item in _items():
        if not limiter.limiter.test(item, *_key(client_ip)):
            reset = limiter.limiter.get_window_stats(item, *_key(client_ip)).reset_time
            wait = max(wait, 1, int(reset - utcnow().timestamp()) + 1)
    return wait


def spend(client_ip: str) -> None:
    """One refused request from this address."""
    for item in _items():
        limiter.limiter.hit(item, *_key(client_ip))
