"""The datasource keep-alive job: redeem each grant's refresh token so it never lapses from disuse."""

from __future__ import annotations

from flask import Flask

from core import audit
from core.extensions import db
from core.models import Datasource
from datasources.grant import keep_alive
from jobs import registry
from jobs.models import ScheduledTask, TaskRun


def init_app(app: Flask) -> None:
    """The runner learns what a keep-alive run does (the runner itself imports no job)."""
    registry.register(ScheduledTask.KIND_REFRESH, refresh_all)


def refresh_all(run: TaskRun) -> None:
    failures = []
    for ds in db.session.scalars(db.select(Datasource).where(Datasource.status != Datasource.INCOMPLETE)).all():
        result = keep_alive(ds)
        audit.record("datasource.refresh", ds.name, actor="scheduler", outcome="success" if result.ok else "failure",
                     message=result.message)
        db.session.commit()
        if result.ok:
            run.updated += 1
        else:
            run.errors += 1
            failures.append(f"{ds.name}: {result.message}")
        run.processed += 1
    if failures:
        run.status, run.error = TaskRun.FAILED, "; ".join(failures)[:4000]
    db.session.commit()
