"""Jobs as Prometheus sees them, read from the runs table at scrape time: whatever worker or host ran them, every
gateway process answers the same."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select

from core.extensions import db
from jobs.models import ScheduledTask, TaskRun

FINISHED = (TaskRun.SUCCEEDED, TaskRun.FAILED, TaskRun.CONFIRM)


def job_states() -> Iterator[Metric]:
    runs = CounterMetricFamily("gateway_job_runs", "Finished job runs kept in the history, by kind and outcome "
                               "(succeeded, failed, needs confirmation).", labels=["kind", "outcome"])
    for kind, outcome, count in db.session.execute(
            select(TaskRun.kind, TaskRun.status, func.count()).where(TaskRun.status.in_(FINISHED))
            .group_by(TaskRun.kind, TaskRun.status)):
        runs.add_metric([kind, outcome], count)
    yield runs
    depth = GaugeMetricFamily("gateway_job_queue_depth", "Runs waiting for a worker (queued, not started), by kind.",
                              labels=["kind"])
    for kind, count in db.session.execute(select(TaskRun.kind, func.count()).where(
            TaskRun.status == TaskRun.QUEUED).group_by(TaskRun.kind)):
        depth.add_metric([kind], count)
    yield depth
    yield from _per_task()
    db.session.rollback()


def _per_task() -> Iterator[Metric]:
    success = GaugeMetricFamily("gateway_job_last_success_timestamp_seconds", "When the scheduled task's last "
                                "successful run finished (Unix time).", labels=["task", "kind"])
    duration = GaugeMetricFamily("gateway_job_last_duration_seconds", "How long the scheduled task's last finished "
                                 "run took.", labels=["task", "kind"])
    last_ok = (select(TaskRun.task_id, func.max(TaskRun.finished_at).label("at"))
               .where(TaskRun.status == TaskRun.SUCCEEDED).group_by(TaskRun.task_id).subquery())
    for name, kind, at in db.session.execute(
            select(ScheduledTask.name, ScheduledTask.kind, last_ok.c.at).join(last_ok, last_ok.c.task_id ==
                                                                               ScheduledTask.id)):
        success.add_metric([name, kind], at.timestamp())
    last_id = (select(TaskRun.task_id, func.max(TaskRun.id).label("id")).where(TaskRun.status.in_(FINISHED),
               TaskRun.started_at.is_not(None)).group_by(TaskRun.task_id).subquery())
    for name, kind, started, finished in db.session.execute(
            select(ScheduledTask.name, ScheduledTask.kind, TaskRun.started_at, TaskRun.finished_at)
            .join(last_id, last_id.c.task_id == ScheduledTask.id).join(TaskRun, TaskRun.id == last_id.c.id)):
        if started is not None and finished is not None:
            duration.add_metric([name, kind], (finished - started).total_seconds())
    yield success
    yield duration
