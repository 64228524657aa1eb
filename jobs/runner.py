"""Running one TaskRun: claim it, keep a heartbeat, do the work, record the outcome.

A run moves queued -> running -> succeeded | failed | needs confirmation. Claims are atomic UPDATEs, so two
workers handed the same run never both start it; a run whose worker died is found by its heartbeat (or, on the
same host, by its dead pid) and marked failed with the reason; the import's sync state lets the next run resume.
What a run does is looked up by its kind in jobs/registry.py: the runner imports no job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select, update

from core import audit
from core.extensions import db
from core.models import Datasource, utcnow
from jobs.models import ScheduledTask, TaskRun
from jobs.registry import JobKind, UnknownJobKind, job_kind

log = logging.getLogger(__name__)


class RunRefused(Exception):
    """The run cannot start (datasource not authorized, another import running); the message says why."""


def _release(run: TaskRun) -> None:
    """Let go of what the run held (the import's per-datasource lock), in the caller's transaction."""
    try:
        kind = job_kind(run.kind)
    except UnknownJobKind:
        return
    kind.release(run.id)


def _resumable(run: TaskRun) -> bool:
    try:
        return job_kind(run.kind).resumable
    except UnknownJobKind:
        return False


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def stale_after() -> timedelta:
    return timedelta(seconds=float(current_app.config.get("JOBS_STALE_SECONDS", 120)))


def _pid_dead(worker: str | None) -> bool:
    """True when `worker` (host:pid) ran on this host and that process no longer exists."""
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child that was not reaped yet is a zombie: dead too
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def stale_reason(run: TaskRun) -> str | None:
    if run.status != TaskRun.RUNNING:
        return None
    if _pid_dead(run.worker):
        return f"The worker process {run.worker} died during the run"
    beat = run.heartbeat_at or run.started_at
    if beat is not None and utcnow() - beat > stale_after():
        return f"The worker {run.worker} stopped responding (last heartbeat {beat:%Y-%m-%d %H:%M:%S} UTC)"
    return None


def mark_failed(run: TaskRun, reason: str) -> bool:
    """Fail a running run whose worker is gone (compare-and-set: only if it is still running)."""
    resumable = " The next run resumes where this one stopped." if _resumable(run) else ""
    result = db.session.execute(update(TaskRun).where(TaskRun.id == run.id, TaskRun.status == TaskRun.RUNNING)
                                .values(status=TaskRun.FAILED, finished_at=utcnow(), error=reason + "." + resumable))
    _release(run)
    db.session.commit()
    if result.rowcount:
        log.warning("run %s marked failed: %s", run.id, reason)
    return bool(result.rowcount)


def sweep_stale() -> int:
    """Fail running runs whose worker died and queued runs nobody picked up."""
    failed = 0
    for run in db.session.scalars(select(TaskRun).where(TaskRun.status == TaskRun.RUNNING)).all():
        reason = stale_reason(run)
        if reason:
            failed += mark_failed(run, reason)
    limit = utcnow() - timedelta(seconds=float(current_app.config.get("JOBS_QUEUED_TIMEOUT", 3600)))
    result = db.session.execute(update(TaskRun).where(TaskRun.status == TaskRun.QUEUED, TaskRun.queued_at < limit)
                                .values(status=TaskRun.FAILED, finished_at=utcnow(),
                                        error="No worker picked this run up in time: is a job worker running?"))
    db.session.commit()
    return failed + (result.rowcount or 0)


def create_run(*, kind: str, datasource_id: int | None, trigger: str, actor: str = "system",
               task: ScheduledTask | None = None, dry_run: bool = False, confirm_removals: bool = False) -> TaskRun:
    run = TaskRun(task_id=task.id if task else None, kind=kind, datasource_id=datasource_id, trigger=trigger,
                  actor=actor, dry_run=dry_run, confirm_removals=confirm_removals)
    db.session.add(run)
    db.session.commit()
    return run


class Heartbeat:
    """Touches the run's heartbeat from its own thread and connection while the work goes on."""

    def __init__(self, app: Flask, run_id: int) -> None:
        self.app, self.run_id = app, run_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def _beat(self) -> None:
        interval = float(self.app.config.get("JOBS_HEARTBEAT_SECONDS", 15))
        with self.app.app_context():
            while not self.stop.wait(interval):
                try:
                    with db.engine.begin() as conn:
                        conn.execute(update(TaskRun).where(TaskRun.id == self.run_id,
                                                           TaskRun.status == TaskRun.RUNNING)
                                     .values(heartbeat_at=utcnow()))
                except Exception:  # noqa: BLE001 - a missed beat is retried; the run itself reports errors
                    log.warning("heartbeat of run %s failed", self.run_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(5)


def claim(run_id: int) -> bool:
    """queued -> running, atomically: the one worker that wins starts the run."""
    now = utcnow()
    result = db.session.execute(update(TaskRun).where(TaskRun.id == run_id, TaskRun.status == TaskRun.QUEUED)
                                .values(status=TaskRun.RUNNING, started_at=now, heartbeat_at=now,
                                        worker=worker_id()))
    db.session.commit()
    return bool(result.rowcount)


def execute_run(run_id: int) -> TaskRun | None:
    """Run a queued run to its end in this process (huey task body, CLI, tests)."""
    if not claim(run_id):
        return db.session.get(TaskRun, run_id)
    run = db.session.get(TaskRun, run_id)
    assert run is not None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with Heartbeat(app, run_id):
        try:
            kind = job_kind(run.kind)
        except UnknownJobKind as exc:
            run.status, run.error = TaskRun.FAILED, str(exc)
        else:
            run = _execute(run, kind)
        run.finished_at = utcnow()
        _release(run)
        forget = run.status == TaskRun.SUCCEEDED and kind_forgets(run)
        if forget:
            db.session.delete(run)
        db.session.commit()
    if not forget:
        _audit(run)
    return run


def kind_forgets(run: TaskRun) -> bool:
    try:
        return job_kind(run.kind).forget(run)
    except UnknownJobKind:
        return False


def _execute(run: TaskRun, kind: JobKind) -> TaskRun:
    """Run the kind's handler; its outcome (or failure, described by the kind) is left on the returned run."""
    run_id = run.id
    try:
        kind.handler(run)
    except Exception as exc:  # noqa: BLE001 - every failure ends up in the run history
        db.session.rollback()
        failed = db.session.get(TaskRun, run_id)
        assert failed is not None
        if isinstance(exc, RunRefused):
            failed.status, failed.error = TaskRun.FAILED, str(exc)
            return failed
        failed.status, failed.error = kind.describe_failure(exc)
        if failed.status == TaskRun.FAILED:
            log.warning("run %s failed: %s", run_id, failed.error)
        return failed
    if run.status == TaskRun.RUNNING:
        run.status = TaskRun.SUCCEEDED
    return run


def _audit(run: TaskRun) -> None:
    target = ""
    if run.datasource_id:
        ds = db.session.get(Datasource, run.datasource_id)
        target = ds.name if ds else ""
    audit.record("task.run", target or run.kind, actor=run.actor,
                 outcome="success" if run.status == TaskRun.SUCCEEDED else "failure",
                 run_id=run.id, kind=run.kind, trigger=run.trigger, dry_run=run.dry_run, status=run.status,
                 **{name: getattr(run, name) for name in TaskRun.COUNTS}, graph_requests=run.graph_requests)
    db.session.commit()


def last_failed_runs(datasource_id: int | None = None) -> list[TaskRun]:
    """Where the latest finished run of a kind (per datasource) failed or waits for confirmation: attention."""
    statement = select(TaskRun).where(TaskRun.dry_run.is_(False), TaskRun.status.in_(
        [TaskRun.SUCCEEDED, TaskRun.FAILED, TaskRun.CONFIRM]))
    if datasource_id is not None:
        statement = statement.where(TaskRun.datasource_id == datasource_id)
    latest: dict[tuple[str, int | None], TaskRun] = {}
    for run in db.session.scalars(statement.order_by(TaskRun.id.desc()).limit(500)):
        latest.setdefault((run.kind, run.datasource_id), run)
    return [run for run in latest.values() if run.status != TaskRun.SUCCEEDED]
