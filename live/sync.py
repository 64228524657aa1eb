"""Debounced delta rounds: a burst of change notifications (or a fallback poll) becomes one import round, and after
it the signed-in users it saw change have their sessions ended or refreshed.

`request_sync` is the only way in. The first request of a burst marks the datasource's `LiveAccess` as wanting a
round (`sync_requested_at`, and `sync_due_at` = now + LIVE_DEBOUNCE_SECONDS) and queues one run for that time;
every later request finds the mark and does nothing, except one due sooner (a notification while a poll waits),
which moves the due time and queues its own run. A run claims the mark when it starts (clearing it, so a change
reported during the round asks for the next one); a run that finds nothing to claim, or a round that changed
nothing, leaves no run row and no audit.

Fallback polling is on iff live access is on and notifications are off or unhealthy (`fallback_reason`, kept by
live.subscriptions): each round then queues the next poll `poll_seconds` later. With healthy notifications a
reconciling round still runs every LIVE_RECONCILE_SECONDS (notifications can be lost). The scheduler's minute tick
restarts the chain if it broke (a worker died between rounds) and lets live.subscriptions keep its subscriptions.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, or_, select, update

from core.extensions import db
from core.models import Datasource, utcnow
from core.timefmt import as_utc
from imports.job import ImportBusy, run_import
from imports.state import import_for
from jobs.models import TaskRun
from jobs.queue import enqueue_run
from jobs.runner import create_run
from live.models import LiveAccess
from live.sessions import refresh_sessions

log = logging.getLogger(__name__)
KIND = "live_sync"
BUSY_RETRY_SECONDS = 5.0  # another import holds the datasource: ask again this much later
FAILURE_RETRY_SECONDS = 30.0  # a round failed (Graph down, throttled past its deadline): try again this much later,
MAX_FAILURE_RETRY_SECONDS = 900.0  # doubling with each failure of the last hour up to this
NOTIFIED = ("notification", "missed")  # rounds whose lag (reported -> applied) is measured
STALE_AFTER = timedelta(minutes=5)  # a request due this long ago whose run never came (its worker died)


def fallback_polling(live: LiveAccess) -> bool:
    """Contract with live.subscriptions: poll when notifications are off, or not healthy (a reason is kept)."""
    return bool(live.enabled and (not live.notifications or live.fallback_reason))


def request_sync(datasource_id: int, reason: str, *, delay: float | None = None) -> bool:
    """Ask for one delta round of this datasource (when live access is on). True when this call queued a run;
    False when a round is already due as soon (debounced) or live access is off. Commits."""
    wait = float(current_app.config.get("LIVE_DEBOUNCE_SECONDS", 2.0)) if delay is None else max(0.0, delay)
    now = utcnow()
    due = now + timedelta(seconds=wait)
    marked = db.session.execute(
        update(LiveAccess).where(LiveAccess.datasource_id == datasource_id, LiveAccess.enabled.is_(True),
                                 or_(LiveAccess.sync_requested_at.is_(None), LiveAccess.sync_due_at.is_(None),
                                     LiveAccess.sync_due_at > due, LiveAccess.sync_due_at < now - STALE_AFTER))
        .values(sync_requested_at=now, sync_due_at=due, sync_reason=reason[:64])).rowcount
    db.session.commit()
    if not marked:
        return False
    run = create_run(kind=KIND, datasource_id=datasource_id, trigger="live", actor=f"live:{reason}"[:320])
    enqueue_run(run.id, delay=wait)
    return True


def _claim(datasource_id: int) -> tuple[datetime, str] | None:
    """Take the datasource's pending request if it is due: (requested at, reason), or None. Compare-and-set on
    the request's time, so of two runs one claims it."""
    now = utcnow()
    pending = db.session.execute(select(LiveAccess.sync_requested_at, LiveAccess.sync_reason).where(
        LiveAccess.datasource_id == datasource_id, LiveAccess.enabled.is_(True),
        LiveAccess.sync_requested_at.is_not(None),
        or_(LiveAccess.sync_due_at.is_(None), LiveAccess.sync_due_at <= now + timedelta(seconds=1)))).first()
    if pending is None:
        db.session.commit()
        return None
    taken = db.session.execute(
        update(LiveAccess).where(LiveAccess.datasource_id == datasource_id,
                                 LiveAccess.sync_requested_at == pending[0])
        .values(sync_requested_at=None, sync_due_at=None, last_round_started_at=now)).rowcount
    db.session.commit()
    return (pending[0], pending[1]) if taken else None


def run_round(run: TaskRun) -> None:
    """The live_sync job: claim the request, run the import round, apply what changed to the sessions."""
    datasource = db.session.get(Datasource, run.datasource_id) if run.datasource_id else None
    claimed = _claim(datasource.id) if datasource is not None else None
    if datasource is None or claimed is None:
        run.summary = {"live": {"claimed": False}}
        return  # superseded by an earlier run, or live access was turned off: nothing to do, nothing kept
    requested_at, reason = claimed
    user_import = import_for(datasource)
    try:
        outcome = run_import(run)
    except ImportBusy:
        db.session.rollback()
        request_sync(datasource.id, reason, delay=BUSY_RETRY_SECONDS)
        run.summary = {"live": {"claimed": True, "deferred": True}}
        return
    except Exception as exc:
        db.session.rollback()
        _record_failure(datasource.id, exc)
        request_sync(datasource.id, "retry", delay=retry_delay(datasource.id))
        raise
    live = db.session.scalar(select(LiveAccess).where(LiveAccess.datasource_id == datasource.id))
    changed = None if _reconcile_due(live) else (outcome.changed if outcome is not None else None)
    applied = refresh_sessions(datasource, user_import, changed)  # commits: `live` reads its row afresh below
    finished = utcnow()
    if live is not None:
        live.last_round_at, live.last_round_error = finished, None
        if reason in NOTIFIED:
            live.lag_seconds = max(0.0, (finished - as_utc(requested_at)).total_seconds())
        if changed is None:
            live.last_reconciled_at = finished
        live.sessions_ended += applied.ended
        live.sessions_refreshed += applied.refreshed
    run.summary = {**(run.summary or {}), "live": {"claimed": True, "reason": reason, "ended": applied.ended,
                                                   "refreshed": applied.refreshed,
                                                   "checked": "all" if changed is None else len(changed)}}
    db.session.commit()
    if live is not None:
        schedule_next(live)


def schedule_next(live: LiveAccess) -> None:
    """The next round: a poll `poll_seconds` from now when polling, else a reconciling round."""
    if not live.enabled:
        return
    if fallback_polling(live):
        request_sync(live.datasource_id, "poll", delay=float(live.poll_seconds))
    else:
        request_sync(live.datasource_id, "reconcile",
                     delay=float(current_app.config.get("LIVE_RECONCILE_SECONDS", 900)))


def _reconcile_due(live: LiveAccess | None) -> bool:
    if live is None or live.last_reconciled_at is None:
        return True
    every = float(current_app.config.get("LIVE_RECONCILE_SECONDS", 900))
    return (utcnow() - as_utc(live.last_reconciled_at)).total_seconds() >= every


def retry_delay(datasource_id: int) -> float:
    """30 s after a failed round, doubling with each live round that failed in the last hour (up to 15 min), so
    a datasource that keeps failing (consent removed, Graph down) is not retried, and audited, twice a minute."""
    failures = db.session.scalar(select(func.count()).select_from(TaskRun).where(
        TaskRun.kind == KIND, TaskRun.datasource_id == datasource_id, TaskRun.status == TaskRun.FAILED,
        TaskRun.finished_at > utcnow() - timedelta(hours=1))) or 0
    return min(MAX_FAILURE_RETRY_SECONDS, FAILURE_RETRY_SECONDS * 2 ** min(failures, 10))


def _record_failure(datasource_id: int, exc: Exception) -> None:
    db.session.execute(update(LiveAccess).where(LiveAccess.datasource_id == datasource_id)
                       .values(last_round_error=f"{type(exc).__name__}: {exc}"[:2000]))
    db.session.commit()


def forget_round(run: TaskRun) -> bool:
    """A live round that found nothing to claim, was deferred, or changed nothing leaves no row and no audit."""
    live = (run.summary or {}).get("live") or {}
    if not live.get("claimed") or live.get("deferred"):
        return True
    changed = sum(getattr(run, name) for name in ("created", "updated", "disabled", "removed", "errors"))
    return not changed and not live.get("ended") and not live.get("refreshed")


def keep_going() -> None:
    """Scheduler tick: every datasource with live access on has a round pending (the chain may have broken)."""
    for live in db.session.scalars(select(LiveAccess).where(LiveAccess.enabled.is_(True))).all():
        pending = live.sync_due_at is not None and as_utc(live.sync_due_at) > utcnow() - STALE_AFTER
        if not pending:
            request_sync(live.datasource_id, "poll" if fallback_polling(live) else "reconcile", delay=0)
