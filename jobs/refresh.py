"""The datasource keep-alive job: redeem each grant's refresh token so it never lapses from disuse."""

from __future__ import annotations

from core import audit
from core.extensions import db
from core.models import Datasource
from jobs.models import TaskRun


def refresh_all(run: TaskRun) -> None:
    from office365.connection import keep_alive

    failures = []
    for ds in db.session.scalars(db.select(Datasource).where(Datasource.status != Datasource.INCOMPLETE)).all():
        result = keep_alive(ds)
        audit.record("datasource.refresh", ds.name, actor="scheduler", outcome="success" if result.ok else "failure",
                     message=result.message)
        if result.ok:
            run.updated += 1
        else:
            run.errors += 1
            failures.append(f"{ds.name}: {result.message}")
        run.processed += 1
    if failures:
        run.status, run.error = TaskRun.FAILED, "; ".join(failures)[:4000]
    db.session.commit()
