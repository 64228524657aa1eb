"""Debounced delta rounds: a burst of change notifications (or a fallback poll) becomes one import round.

`request_sync` is the only way in. The first request of a burst marks the datasource's `LiveAccess` as wanting a
round (`sync_requested_at`) and queues one run, delayed by LIVE_DEBOUNCE_SECONDS; every later request finds the
mark already set and does nothing. The run clears the mark when it starts, so a change reported while a round is
running asks for the next one.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import update

from core.extensions import db
from core.models import utcnow
from jobs.queue import enqueue_run
from jobs.runner import create_run
from live.models import LiveAccess

KIND = "live_sync"


def request_sync(datasource_id: int, reason: str, *, delay: float | None = None) -> bool:
    """Ask for one delta round of this datasource (when live access is on). True when this call queued it; False
    when a round is already wanted (debounced) or live access is off. Commits."""
    marked = db.session.execute(
        update(LiveAccess).where(LiveAccess.datasource_id == datasource_id, LiveAccess.enabled.is_(True),
                                 LiveAccess.sync_requested_at.is_(None))
        .values(sync_requested_at=utcnow(), sync_reason=reason[:64])).rowcount
    db.session.commit()
    if not marked:
        return False
    run = create_run(kind=KIND, datasource_id=datasource_id, trigger="live", actor=f"live:{reason}"[:320])
    wait = float(current_app.config.get("LIVE_DEBOUNCE_SECONDS", 2.0)) if delay is None else delay
    enqueue_run(run.id, delay=wait)
    return True
