"""Import lag, read at scrape time: how long ago each datasource's directory was last imported successfully."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from core.extensions import db
from core.models import Datasource, utcnow
from jobs.models import ScheduledTask, TaskRun


def import_lag() -> Iterator[Metric]:
    lag = GaugeMetricFamily("gateway_import_lag_seconds", "Seconds since the datasource's last successful user "
                            "import (not a dry run) finished.", labels=["datasource"])
    now = utcnow()
    for name, at in db.session.execute(
            select(Datasource.name, func.max(TaskRun.finished_at)).join(TaskRun, TaskRun.datasource_id ==
                                                                        Datasource.id)
            .where(TaskRun.kind == ScheduledTask.KIND_IMPORT, TaskRun.status == TaskRun.SUCCEEDED,
                   TaskRun.dry_run.is_(False)).group_by(Datasource.name)):
        if at is not None:
            lag.add_metric([name], max(0.0, (now - at).total_seconds()))
    db.session.rollback()
    yield lag
