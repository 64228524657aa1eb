"""How a bulk job ends: the objects not sent are "not attempted", the job's real outcome in words, the audit row.

The outcome is what happened, never a blanket "success": "partial: 340 added, 20 failed, 640 not attempted".
The audit row keeps every failed object id (not a sample), with its reason.
"""

from __future__ import annotations

from sqlalchemy import func, select, update

from bulk.models import BulkItem, BulkJob
from core import audit
from core.extensions import db
from core.models import Datasource, utcnow

FAILURES = ("failed", "not_found", "usage_location_required", "no_seats_left")
DONE_WORDS = {"added": "added", "already_member": "already members", "removed": "removed",
              "not_member": "not members", "assigned": "assigned", "already_assigned": "already held it",
              "unassigned": "unassigned", "not_assigned": "did not hold it"}


def outcome_text(counts: dict[str | None, int], *, cancelled: bool = False) -> tuple[str, str]:
    """(short outcome for the audit column, the sentence): "partial", "partial: 340 added, 20 failed, ..."."""
    parts = [f"{counts[o]} {word}" for o, word in DONE_WORDS.items() if counts.get(o)]
    done = sum(counts.get(o, 0) for o in DONE_WORDS)
    failed = sum(counts.get(o, 0) for o in FAILURES)
    skipped = counts.get("not_attempted", 0) + counts.get(None, 0)
    if failed:
        parts.append(f"{failed} failed")
    if skipped:
        parts.append(f"{skipped} not attempted")
    if cancelled:
        short = "cancelled"
    elif not failed and not skipped:
        short = "success"
    elif done == 0:
        short = "failure"
    else:
        short = "partial"
    return short, f"{short}: {', '.join(parts) or 'nothing to do'}"


def finish(job: BulkJob, *, cancelled: bool = False, error: str | None = None, graph_requests: int | None = None
           ) -> str:
    """End the job (caller commits): pending items become "not attempted", status and audit row written."""
    reason = "Cancelled before it was sent." if cancelled else f"Not attempted: {error or 'the job stopped.'}"
    db.session.execute(update(BulkItem).where(BulkItem.job_id == job.id, BulkItem.outcome.is_(None))
                       .values(outcome="not_attempted", message=reason[:2000]))
    counts = {o: n for o, n in db.session.execute(
        select(BulkItem.outcome, func.count()).where(BulkItem.job_id == job.id).group_by(BulkItem.outcome)).all()}
    short, sentence = outcome_text(counts, cancelled=cancelled)
    job.status = {"success": BulkJob.DONE, "partial": BulkJob.PARTIAL, "failure": BulkJob.FAILED,
                  "cancelled": BulkJob.CANCELLED}[short]
    if error and not cancelled and job.status == BulkJob.DONE:
        job.status = BulkJob.FAILED
    job.result, job.error, job.finished_at = sentence[:200], error, utcnow()
    if graph_requests is not None:
        job.graph_requests = graph_requests
    failed = db.session.execute(select(BulkItem.object_id, BulkItem.outcome, BulkItem.message).where(
        BulkItem.job_id == job.id, BulkItem.outcome.in_(FAILURES)).order_by(BulkItem.position)).all()
    ds = db.session.get(Datasource, job.datasource_id)
    audit.record(
        "o365.bulk_job", f"{job.action_label}: {job.target_name} ({job.target_id})"[:512], outcome=short,
        actor=job.actor or "system", datasource=ds.name if ds else None, operation=f"Bulk: {job.action_label}",
        job_id=job.id, result=sentence, counts={str(k): v for k, v in counts.items()},
        selection=job.selection, graph_requests=job.graph_requests, retry_of=job.parent_id, error=error,
        failed_ids=[oid for oid, _, _ in failed],
        failures=[{"id": oid, "outcome": o, "reason": (m or "")[:300]} for oid, o, m in failed],
    )
    return sentence
