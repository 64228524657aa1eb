"""The scheduler tick (every minute, in every consumer): claim due runs exactly once and hand them to huey.

Exactly once: a due run is claimed by inserting TaskRun(task_id, due_at); the unique constraint lets one
process win however many tick at the same moment. The winner moves `next_run_at` on (compare-and-set) and
enqueues the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core.extensions import db
from core.models import utcnow
from core.timefmt import deployment_zone_name
from jobs import registry
from jobs.models import ScheduledTask, TaskRun
from jobs.recurrence import next_run
from jobs.runner import sweep_stale

log = logging.getLogger(__name__)
KEEP_ALIVE_NAME = "Datasource token keep-alive"


def ensure_system_tasks() -> None:
    """The keep-alive token refresh is a scheduled task like the others (daily at 03:00, the deployment's zone)."""
    if db.session.scalar(select(ScheduledTask.id).where(ScheduledTask.kind == ScheduledTask.KIND_REFRESH)):
        return
    task = ScheduledTask(name=KEEP_ALIVE_NAME, kind=ScheduledTask.KIND_REFRESH, schedule="daily", at_minute=180,
                         time_zone=deployment_zone_name(), owner="system")
    task.next_run_at = next_run(task, utcnow())
    db.session.add(task)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()


def claim_due(task: ScheduledTask, due: datetime) -> TaskRun | None:
    """Insert the run for (task, due); None when another process already claimed it."""
    run = TaskRun(task_id=task.id, kind=task.kind, datasource_id=task.datasource_id, trigger="schedule",
                  actor=f"schedule:{task.name}"[:320], due_at=due, dry_run=task.dry_run)
    db.session.add(run)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return None
    following = next_run(task, max(due, utcnow()))
    db.session.execute(update(ScheduledTask).where(ScheduledTask.id == task.id, ScheduledTask.next_run_at == due)
                       .values(next_run_at=following))
    db.session.commit()
    return run


def _run_tick_hooks() -> None:
    """The features' per-tick work (live access keeps its subscriptions and fallback poll going); one failing
    hook is logged and never stops the others or the scheduled runs."""
    for name, hook in registry.tick_hooks():
        try:
            hook()
        except Exception:  # noqa: BLE001 - logged; the next tick tries again
            db.session.rollback()
            log.warning("scheduler tick hook %s failed", name, exc_info=True)


def tick(now: datetime | None = None, *, enqueue: Callable[[int], None] | None = None) -> list[int]:
    """Claim every due run and hand each to `enqueue` (the queue's; None: claim only); returns the ids claimed.

    The queue passes its own `enqueue_run`, so the scheduler does not import the queue that calls it.
    """
    now = now or utcnow()
    ensure_system_tasks()
    sweep_stale()
    _run_tick_hooks()
    claimed = []
    due_tasks = db.session.execute(select(ScheduledTask.id, ScheduledTask.next_run_at).where(
        ScheduledTask.enabled.is_(True), ScheduledTask.next_run_at.is_not(None),
        ScheduledTask.next_run_at <= now)).all()
    for task_id, due in due_tasks:
        task = db.session.get(ScheduledTask, task_id)
        if task is None:
            continue
        run = claim_due(task, due)
        if run is not None:
            claimed.append(run.id)
            if enqueue is not None:
                enqueue(run.id)
    return claimed
