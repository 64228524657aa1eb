"""Each datasource's status and the days left before its re-authorization is due, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import select

from core.extensions import db
from core.models import Datasource, utcnow
from datasources.grant import reauthorization_due

STATUSES = (Datasource.INCOMPLETE, Datasource.READY, Datasource.NEEDS_REAUTHORIZATION)


def datasource_states() -> Iterator[Metric]:
    status = GaugeMetricFamily("gateway_datasource_status", "1 for the datasource's current status (incomplete, "
                               "ready, needs re-authorization), 0 for the others.", labels=["datasource", "status"])
    due = GaugeMetricFamily("gateway_datasource_reauthorization_due_days", "Days until the datasource's "
                            "re-authorization is due (negative: overdue).", labels=["datasource"])
    now = utcnow()
    for datasource in db.session.scalars(select(Datasource).order_by(Datasource.id)):
        for name in STATUSES:
            status.add_metric([datasource.name, name], 1.0 if datasource.status == name else 0.0)
        when = reauthorization_due(datasource)
        if when is not None:
            due.add_metric([datasource.name], round((when - now).total_seconds() / 86400, 3))
    db.session.rollback()
    yield status
    yield due
