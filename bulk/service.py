"""Bulk jobs for the pages and the API: preview a selection, queue it, follow it, cancel it, retry the failed.

A preview is stored as a job (status "previewed") with only the objects that would change as its items (the
others are counted in `unchanged`), so the preview pages through them without asking Graph again and "Queue"
runs exactly what was previewed. Each view commits its own transaction here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, event, func, insert, select

from bulk.models import BulkItem, BulkJob
from bulk.outcome import FAILURES, finish
from core.extensions import db
from core.models import Datasource, utcnow
from datasources.service import Caller, graph_access
from jobs.models import TaskRun
from jobs.queue import enqueue_run
from jobs.runner import mark_failed, stale_reason
from office365 import bulk_preview
from office365.bulk_preview import ACTIONS, GROUP_ACTIONS, Preview
from office365.errors import FieldError
from office365.selection import Matching, checked_matching, iter_matching

KIND = "o365_bulk"
MAX_IDS = 5000
PREVIEW_DEADLINE = 12.0  # seconds a page waits on Graph for a preview
#: Outcomes "Retry the failed" sends again (not_attempted: the job stopped before them, not cancelled).
RETRYABLE = FAILURES
OUTCOME_LABELS = {
    None: "waiting", "added": "added", "already_member": "already a member", "removed": "removed",
    "not_member": "not a member", "assigned": "assigned", "already_assigned": "already held",
    "unassigned": "removed", "not_assigned": "did not hold it", "failed": "failed", "not_found": "not found",
    "usage_location_required": "no usage location", "no_seats_left": "no seats left",
    "not_attempted": "not attempted", "invalid": "not an object id",
}
DONE_VERBS = {"add": "added", "remove": "removed", "assign-licence": "assigned", "remove-licence": "unassigned"}


@dataclass(frozen=True)
class Selection:
    """What the list page posted: explicit object ids, or an "all matching" search of a list."""

    ids: tuple[str, ...] = ()
    matching: Matching | None = None
    shown_count: int | None = None

    def summary(self) -> dict[str, Any]:
        if self.matching is not None:
            m = self.matching
            return {"source": m.source, "q": m.q, "filter": list(m.filters), "count_shown": self.shown_count,
                    "described": m.describe()}
        return {"ids": len(self.ids)}


def checked_selection(ids: Sequence[str], source: str | None, q: str = "", filters: Sequence[str] = (),
                      count: int | None = None) -> Selection:
    ids = [i for i in (x.strip() for x in ids) if i]
    if ids and source:
        raise FieldError("ids", "Send either ids or source (all matching), not both.")
    if source:
        return Selection(matching=checked_matching(source, q, filters), shown_count=count)
    if not ids:
        raise FieldError("ids", "Select at least one user (or all matching the search).")
    if len(ids) > MAX_IDS:
        raise FieldError("ids", f"At most {MAX_IDS} users by id at a time; select all matching the search instead.")
    return Selection(ids=tuple(dict.fromkeys(ids)))


def checked_action(action: str) -> str:
    if action not in ACTIONS:
        raise FieldError("action", "The action must be add, remove, assign-licence or remove-licence.")
    return action


def preview(ds: Datasource, caller: Caller, action: str, target: str, selection: Selection, *,
            disabled_plans: Sequence[str] = (), deadline: float | None = None) -> BulkJob:
    """Read what the change would do (Graph, within `deadline` seconds) and store it as a previewed job."""
    action = checked_action(action)
    access = graph_access(ds)
    seconds = deadline if deadline is not None else float(current_app.config.get("BULK_PREVIEW_DEADLINE",
                                                                                  PREVIEW_DEADLINE))
    users = None
    if selection.matching is not None:
        users = iter_matching(access, selection.matching, bulk_preview.PREVIEW_SELECT)
    result = bulk_preview.preview(access, action, target, ids=selection.ids if users is None else None,
                                  users=users, deadline=seconds)
    return _store(ds, caller, result, selection, disabled_plans)


def _store(ds: Datasource, caller: Caller, result: Preview, selection: Selection,
           disabled_plans: Sequence[str]) -> BulkJob:
    job = BulkJob(datasource_id=ds.id, action=result.action, target_id=result.target_id,
                  target_name=result.target_name[:256], selection=selection.summary(),
                  disabled_plans=list(disabled_plans), unchanged=dict(result.unchanged), actor=caller.actor,
                  total=len(result.changes), preview_requests=result.graph_requests)
    db.session.add(job)
    db.session.flush()
    rows = [{"job_id": job.id, "position": n, "object_id": p.id, "label": p.label[:400]}
            for n, p in enumerate(result.changes)]
    for start in range(0, len(rows), 5000):
        db.session.execute(insert(BulkItem), rows[start:start + 5000])
    db.session.commit()
    return job


def job_for(ds: Datasource, job_id: int) -> BulkJob | None:
    job = db.session.get(BulkJob, job_id)
    return job if job is not None and job.datasource_id == ds.id else None


def recent_jobs(ds: Datasource, limit: int = 20) -> list[BulkJob]:
    return list(db.session.scalars(select(BulkJob).where(BulkJob.datasource_id == ds.id)
                                   .order_by(BulkJob.id.desc()).limit(limit)))


class NotQueueable(Exception):
    """The job is not in a state that allows this (queued twice, cancelled after it ended...)."""


def queue(job: BulkJob, caller: Caller, *, trigger: str = "manual") -> BulkJob:
    """Hand a previewed job to a worker."""
    if job.status != BulkJob.PREVIEWED:
        raise NotQueueable(f"This job is already {job.status}.")
    if job.total == 0:
        raise NotQueueable("Nothing would change: there is nothing to queue.")
    _check_writable(job)
    _new_run(job, trigger)
    db.session.commit()
    enqueue_run(job.run_id)  # type: ignore[arg-type]
    return job


def _check_writable(job: BulkJob) -> None:
    ds = db.session.get(Datasource, job.datasource_id)
    if ds is None or not ds.read_write:
        raise NotQueueable('This data source is read-only: tick "Read and write users & groups" on it and '
                           "Re-Authorize before queueing changes.")


def _new_run(job: BulkJob, trigger: str) -> TaskRun:
    run = TaskRun(kind=KIND, datasource_id=job.datasource_id, trigger=trigger, actor=job.actor[:320],
                  total_estimate=job.total)
    db.session.add(run)
    db.session.flush()
    job.run_id, job.status, job.queued_at = run.id, BulkJob.QUEUED, job.queued_at or utcnow()
    return run


def cancel(job: BulkJob) -> BulkJob:
    """Stop the job after the chunk in flight; the objects not sent yet are "not attempted"."""
    if not job.active:
        raise NotQueueable(f"This job is {job.status}; there is nothing to cancel.")
    job.cancel_requested = True
    run = db.session.get(TaskRun, job.run_id) if job.run_id else None
    if job.status == BulkJob.QUEUED and (run is None or run.status == TaskRun.QUEUED):
        # No worker holds it yet: end it here (the claim of the queued run then fails and nothing is sent).
        if run is not None:
            run.status, run.finished_at, run.error = TaskRun.FAILED, utcnow(), "Cancelled before it started."
        finish(job, cancelled=True)
    db.session.commit()
    return job


def retry_failed(job: BulkJob, caller: Caller) -> BulkJob:
    """A new job for this job's failed objects only, queued at once (the preview was this job's)."""
    if not job.finished:
        raise NotQueueable("The job has not finished yet.")
    outcomes = list(RETRYABLE) + ([] if job.status == BulkJob.CANCELLED else ["not_attempted"])
    failed = db.session.execute(select(BulkItem.object_id, BulkItem.label).where(
        BulkItem.job_id == job.id, BulkItem.outcome.in_(outcomes)).order_by(BulkItem.position)).all()
    if not failed:
        raise NotQueueable("No object failed: there is nothing to retry.")
    _check_writable(job)
    retry = BulkJob(datasource_id=job.datasource_id, action=job.action, target_id=job.target_id,
                    target_name=job.target_name, selection={"retry_of": job.id, "ids": len(failed)},
                    disabled_plans=list(job.disabled_plans or []), actor=caller.actor, parent_id=job.id,
                    total=len(failed))
    db.session.add(retry)
    db.session.flush()
    rows = [{"job_id": retry.id, "position": n, "object_id": oid, "label": label}
            for n, (oid, label) in enumerate(failed)]
    for start in range(0, len(rows), 5000):
        db.session.execute(insert(BulkItem), rows[start:start + 5000])
    _new_run(retry, "retry")
    db.session.commit()
    enqueue_run(retry.run_id)  # type: ignore[arg-type]
    return retry


def counts(job: BulkJob) -> dict[str | None, int]:
    """Items by outcome (None: not sent yet)."""
    rows = db.session.execute(select(BulkItem.outcome, func.count()).where(BulkItem.job_id == job.id)
                              .group_by(BulkItem.outcome)).all()
    return {outcome: n for outcome, n in rows}


def items_page(job: BulkJob, *, outcome: str | None = None, page: int = 1, per_page: int = 50
               ) -> tuple[list[BulkItem], int]:
    """One page of the job's items (all, or one outcome: "failed" means every failure) and how many match."""
    statement = select(BulkItem).where(BulkItem.job_id == job.id)
    if outcome == "failed":
        statement = statement.where(BulkItem.outcome.in_([*RETRYABLE, "not_attempted"]))
    elif outcome == "pending":
        statement = statement.where(BulkItem.outcome.is_(None))
    elif outcome:
        statement = statement.where(BulkItem.outcome == outcome)
    total = db.session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    page = max(1, page)
    items = list(db.session.scalars(statement.order_by(BulkItem.position).offset((page - 1) * per_page)
                                    .limit(per_page)))
    return items, total


def status(job: BulkJob) -> dict[str, Any]:
    """What the progress bar and the API show: state, counts, processed of total."""
    by_outcome = counts(job)
    pending = by_outcome.pop(None, 0)
    failed = sum(n for o, n in by_outcome.items() if o in RETRYABLE)
    return {"id": job.id, "status": job.status, "action": job.action, "target_id": job.target_id,
            "target_name": job.target_name, "total": job.total, "processed": job.total - pending,
            "pending": pending, "failed": failed, "counts": by_outcome, "unchanged": dict(job.unchanged or {}),
            "result": job.result, "error": job.error, "cancel_requested": job.cancel_requested,
            "graph_requests": job.graph_requests, "preview_requests": job.preview_requests,
            "retry_of": job.parent_id, "finished": job.finished}


def check_alive(job: BulkJob) -> None:
    """A job whose worker died is resumed now rather than at the next scheduler tick (page and API reads)."""
    if not job.active or job.run_id is None:
        return
    run = db.session.get(TaskRun, job.run_id)
    if run is None:
        return
    reason = stale_reason(run)
    if reason:
        mark_failed(run, reason)


def enqueue_after_commit(run_id: int) -> None:
    """Queue `run_id` once the transaction that created it has committed (a worker must be able to see it)."""
    session = db.session()

    def _enqueue(_session: Any) -> None:
        enqueue_run(run_id)

    event.listen(session, "after_commit", _enqueue, once=True)


def resume_if_stopped(run_id: int) -> None:
    """The run ended; if its job did not (its worker died part-way), queue a new run for the pending items."""
    job = db.session.scalar(select(BulkJob).where(BulkJob.run_id == run_id))
    if job is None or not job.active:
        return
    if job.cancel_requested or job.resumes >= 20:
        finish(job, cancelled=job.cancel_requested,
               error=None if job.cancel_requested else "The job stopped 20 times; it was not resumed again.")
        return
    job.resumes += 1
    run = _new_run(job, "resume")
    enqueue_after_commit(run.id)


def stale_runs_swept() -> int:
    """Resume every job whose worker died (also done by the scheduler's sweep, through the kind's release)."""
    swept = 0
    for job in db.session.scalars(select(BulkJob).where(BulkJob.status.in_(BulkJob.ACTIVE))).all():
        before = job.run_id
        check_alive(job)
        swept += job.run_id != before
    return swept


def pending_ids(job: BulkJob, limit: int) -> list[tuple[int, str, int]]:
    """(item id, object id, attempts) of the next pending items, in order."""
    return [tuple(r) for r in db.session.execute(  # type: ignore[misc]
        select(BulkItem.id, BulkItem.object_id, BulkItem.attempts).where(
            BulkItem.job_id == job.id, BulkItem.outcome.is_(None)).order_by(BulkItem.position).limit(limit))]


def pending_count(job: BulkJob) -> int:
    return db.session.scalar(select(func.count()).where(BulkItem.job_id == job.id, BulkItem.outcome.is_(None))) or 0


_ITEM_FIELDS = ("outcome", "message", "request_id", "attempts")


def record_outcomes(rows: list[dict[str, Any]]) -> None:
    """Write item outcomes (dicts with the item `id` and `_ITEM_FIELDS`) in one executemany, in the caller's
    transaction."""
    if not rows:
        return
    table = BulkItem.__table__
    statement = table.update().where(table.c.id == bindparam("item_id")).values(
        {name: bindparam(f"new_{name}") for name in _ITEM_FIELDS})
    db.session.execute(statement, [{"item_id": r["id"], **{f"new_{n}": r.get(n) for n in _ITEM_FIELDS}}
                                   for r in rows])


__all__ = ["GROUP_ACTIONS", "KIND", "Selection", "checked_selection", "preview", "queue", "cancel", "retry_failed",
           "status", "items_page", "counts", "job_for", "recent_jobs", "check_alive", "resume_if_stopped"]
