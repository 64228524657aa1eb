"""The bulk job kind: send a job's pending objects to Graph, 20 per request, a few requests at a time.

Each round's outcomes are committed with the run's progress, so a page shows a live count and a killed worker
loses at most the round in flight (resent on resume: every change is idempotent). Throttling slows the job down
instead of failing objects: the client honours Retry-After, the job halves how many requests it sends at once
whenever Graph answered 429 and grows back one at a time after clean rounds, and objects Graph could not take
(throttled, unavailable) stay pending for a later round, up to `MAX_ATTEMPTS`.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import current_app
from sqlalchemy import select

from bulk.models import BulkJob
from bulk.outcome import finish
from bulk.service import KIND, pending_count, pending_ids, record_outcomes, resume_if_stopped
from core.extensions import db
from core.models import Datasource, utcnow
from datasources.service import graph_access
from jobs import registry
from jobs.models import TaskRun
from jobs.runner import RunRefused
from office365.bulk import ItemResult, apply_chunk
from office365.bulk_preview import pin_tokens
from office365.errors import Office365Error
from office365.graph import BATCH_LIMIT

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
START_CONCURRENCY, MAX_CONCURRENCY = 2, 4


class Concurrency:
    """How many Graph requests a job sends at once: halved on throttling, grown back after clean rounds."""

    def __init__(self, start: int = START_CONCURRENCY, top: int = MAX_CONCURRENCY) -> None:
        self.level, self.top, self.clean = start, top, 0

    def after_round(self, troubled: bool) -> None:
        """`troubled`: Graph throttled (429) or failed (5xx) some of the round."""
        if troubled:
            self.level, self.clean = max(1, self.level // 2), 0
        else:
            self.clean += 1
            if self.clean >= 3 and self.level < self.top:
                self.level, self.clean = self.level + 1, 0


def _cancel_requested(job_id: int) -> bool:
    return bool(db.session.scalar(select(BulkJob.cancel_requested).where(BulkJob.id == job_id)))


def run_bulk(run: TaskRun) -> None:
    job = db.session.scalar(select(BulkJob).where(BulkJob.run_id == run.id))
    if job is None:
        raise RunRefused("No bulk job belongs to this run.")
    datasource = db.session.get(Datasource, job.datasource_id)
    if datasource is None or not datasource.tenant_id:
        finish(job, error="The data source is gone or not authorized.")
        db.session.commit()
        raise RunRefused("The data source of this bulk job is gone or not authorized.")
    job.status = BulkJob.RUNNING
    db.session.commit()
    access = graph_access(datasource)
    client = access.client
    tokens = pin_tokens(client)  # the rounds send from worker threads
    sent_before = job.graph_requests
    pace = Concurrency(int(current_app.config.get("BULK_START_CONCURRENCY", START_CONCURRENCY)))
    try:
        while True:
            if _cancel_requested(job.id):
                run.graph_requests = job.graph_requests = sent_before + client.requests_sent
                finish(job, cancelled=True)
                run.status, run.error = TaskRun.FAILED, job.result
                db.session.commit()
                return
            pending = pending_ids(job, BATCH_LIMIT * pace.level)
            if not pending:
                break
            throttled_before = client.throttled
            tokens.renew()
            rows = _round(access, job, pending, pace.level)
            record_outcomes(rows)
            left_over = any(r["outcome"] is None for r in rows)  # Graph could not take them even after retries
            troubled = client.throttled > throttled_before or left_over
            pace.after_round(troubled)
            run.graph_requests = job.graph_requests = sent_before + client.requests_sent
            run.processed = job.total - pending_count(job)
            run.heartbeat_at = utcnow()
            db.session.commit()
            if left_over:  # the client already waited each Retry-After; give Graph a moment before resending
                time.sleep(float(current_app.config.get("BULK_THROTTLE_PAUSE", 1.0)))
    except Exception as exc:
        db.session.rollback()
        error = str(exc) if isinstance(exc, Office365Error) else f"Unexpected error ({type(exc).__name__})."
        job = db.session.get(BulkJob, job.id)  # type: ignore[assignment]
        finish(job, error=error, graph_requests=sent_before + client.requests_sent)
        db.session.commit()
        raise
    finish(job, graph_requests=sent_before + client.requests_sent)
    run.graph_requests = job.graph_requests
    run.processed = job.total
    if job.status != BulkJob.DONE:
        run.status, run.error = TaskRun.FAILED, job.result
    db.session.commit()


def _round(access: Any, job: BulkJob, pending: list[tuple[int, str, int]], level: int) -> list[dict[str, Any]]:
    """Send up to `level` chunks of 20 at once; the item rows to write (transient failures stay pending)."""
    chunks = [pending[i:i + BATCH_LIMIT] for i in range(0, len(pending), BATCH_LIMIT)]
    plan_name = job.target_name

    def send(chunk: list[tuple[int, str, int]]) -> list[ItemResult]:
        return apply_chunk(access, job.action, job.target_id, [oid for _, oid, _ in chunk],
                           disabled_plans=job.disabled_plans or (), plan_name=plan_name)

    if len(chunks) == 1:
        answers = [send(chunks[0])]
    else:
        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            answers = list(pool.map(send, chunks))
    rows: list[dict[str, Any]] = []
    for chunk, results in zip(chunks, answers, strict=True):
        by_id = {r.id.lower(): r for r in results}
        for item_id, oid, attempts in chunk:
            result = by_id.get(oid.lower())
            if result is None:
                rows.append({"id": item_id, "outcome": "failed", "message": "Graph returned no answer for it.",
                             "attempts": attempts + 1})
            elif (result.transient or result.outcome == "not_attempted") and attempts + 1 < MAX_ATTEMPTS:
                rows.append({"id": item_id, "outcome": None, "message": result.message[:2000],
                             "attempts": attempts + 1})
            else:
                outcome = "failed" if result.outcome == "not_attempted" else result.outcome
                rows.append({"id": item_id, "outcome": outcome, "message": result.message[:2000],
                             "request_id": result.request_id, "attempts": attempts + 1})
    return rows


def describe_failure(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, Office365Error):
        return TaskRun.FAILED, f"{exc} The objects not sent are listed as not attempted; Retry the failed sends them."
    return TaskRun.FAILED, f"Unexpected error ({type(exc).__name__}): {exc}"[:2000]


def register() -> None:
    registry.register(KIND, run_bulk, describe_failure=describe_failure, release=resume_if_stopped, resumable=True)
