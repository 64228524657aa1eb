"""The user-import job: one datasource's import run (or dry run) recorded on its TaskRun, registered with the
job runner by `imports.init_app`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flask import current_app
from sqlalchemy import update

from core.extensions import db
from core.models import Datasource, utcnow
from datasources.grant import graph_client
from imports.apply import RemovalGuardTripped
from imports.dryrun import DryRun
from imports.importer import Importer
from imports.models import UserImport
from imports.outcome import Outcome
from imports.state import import_for
from jobs.models import TaskRun
from jobs.runner import RunRefused, mark_failed, stale_reason
from office365.errors import Office365Error, ReauthorizationRequired


class ImportBusy(RunRefused):
    """Another run holds this datasource's import (live access asks again a little later)."""


def _lock(user_import: UserImport, run: TaskRun) -> None:
    """One import per datasource at a time; a holder whose worker died is failed and the lock taken over."""
    taken = db.session.execute(update(UserImport).where(UserImport.id == user_import.id,
                                                        UserImport.running_run_id.is_(None))
                               .values(running_run_id=run.id)).rowcount
    db.session.commit()
    if taken:
        return
    holder_id = db.session.scalar(db.select(UserImport.running_run_id).where(UserImport.id == user_import.id))
    holder = db.session.get(TaskRun, holder_id) if holder_id else None
    if holder is not None and holder.status == TaskRun.RUNNING:
        reason = stale_reason(holder)
        if reason is None:
            raise ImportBusy(f"Another import of this datasource is running (run #{holder.id}); this run was "
                             "skipped.")
        mark_failed(holder, reason)
    taken = db.session.execute(update(UserImport).where(UserImport.id == user_import.id,
                                                        (UserImport.running_run_id == holder_id)
                                                        | UserImport.running_run_id.is_(None))
                               .values(running_run_id=run.id)).rowcount
    db.session.commit()
    if not taken:
        raise ImportBusy("Another import of this data source started at the same moment; this run was skipped.")


class _RequestCount:
    """Graph requests the run sent so far: its client's, then the importer's (which adds its reader threads')."""

    def __init__(self, source: Any) -> None:
        self.source = source  # anything with a `requests_sent`

    def __call__(self) -> int:
        return int(self.source.requests_sent)


def release_lock(run_id: int) -> None:
    """The run ended (however): the datasource's import is free again (committed by the runner)."""
    db.session.execute(update(UserImport).where(UserImport.running_run_id == run_id).values(running_run_id=None))


def run_import(run: TaskRun) -> Outcome | None:
    """The run's import round (or dry run); returns what it did (None when it stopped for a confirmation)."""
    datasource = db.session.get(Datasource, run.datasource_id) if run.datasource_id else None
    if datasource is None:
        raise RunRefused("The datasource of this import no longer exists.")
    if datasource.status == Datasource.INCOMPLETE or not datasource.tenant_id:
        raise RunRefused(f"The datasource \"{datasource.name}\" has not been authorized yet: an administrator must "
                         "click Authorize first.")
    user_import = import_for(datasource)
    db.session.commit()
    deadline = current_app.config.get("IMPORT_GRAPH_DEADLINE")

    def make_client(ds: Datasource | None = None):  # type: ignore[no-untyped-def]
        client = graph_client(ds or db.session.get(Datasource, datasource.id))
        if deadline:  # tests (and impatient operators) bound each Graph call's retries more tightly
            client.retry = replace(client.retry, deadline=float(deadline), backoff_cap=max(0.1, float(deadline) / 4))
        return client

    client = make_client(datasource)
    page_size = int(current_app.config.get("IMPORT_PAGE_SIZE", 999))
    requests_sent = _RequestCount(client)
    progress = record_progress(run, requests_sent)
    if not user_import.users_delta or user_import.full_round and user_import.phase != "idle":
        _estimate_total(run, client)
    try:
        if run.dry_run:
            outcome = DryRun(user_import, datasource, client, page_size=page_size, on_page=progress).run()
        else:
            _lock(user_import, run)
            importer = Importer(user_import, datasource, client, confirm_removals=run.confirm_removals,
                                page_size=page_size, on_page=progress, client_factory=make_client)
            requests_sent.source = importer
            outcome = importer.run()
    except RemovalGuardTripped as exc:
        db.session.rollback()
        run.summary = {"guard": {"pending": exc.pending, "total": exc.total, "percent": exc.percent,
                                 "names": exc.names}}
        run.status, run.error = TaskRun.CONFIRM, str(exc)
        run.graph_requests = requests_sent()
        db.session.commit()
        return None
    except Exception:
        db.session.rollback()
        run.graph_requests = requests_sent()
        db.session.commit()
        raise
    progress(outcome, "done")
    run.summary = outcome.summary()
    run.status = TaskRun.SUCCEEDED
    if outcome.errors:
        run.error = f"{outcome.errors} user(s) could not be imported; see the list below."
    db.session.commit()
    return outcome


def record_progress(run: TaskRun, requests_sent: Callable[[], int]) -> Callable[[Outcome, str], None]:
    """The `on_page` callback that copies an outcome onto a run (committed with the page)."""

    def on_page(outcome: Outcome, phase: str) -> None:
        for name in TaskRun.COUNTS:
            setattr(run, name, getattr(outcome, name))
        run.pages, run.processed, run.resyncs = outcome.pages, outcome.processed, outcome.resyncs
        run.graph_requests = requests_sent()
        run.phase = phase
        run.heartbeat_at = utcnow()

    return on_page


def _estimate_total(run: TaskRun, client) -> None:  # type: ignore[no-untyped-def]
    """A full round's progress bar needs a total: the tenant's user count (one cheap request)."""
    try:
        run.total_estimate = int(str(client.request("GET", "/users/$count", advanced=True).body).strip())
    except (Office365Error, ValueError):
        return
    db.session.commit()


def describe_failure(exc: Exception) -> tuple[str, str]:
    """(status, error text) for the run history (a RunRefused is told by the runner itself)."""
    if isinstance(exc, ReauthorizationRequired):
        return TaskRun.FAILED, f"{exc} The import resumes where it stopped once the data source is re-authorized."
    if isinstance(exc, Office365Error):
        return TaskRun.FAILED, f"{exc} The next run resumes where this one stopped."
    return TaskRun.FAILED, f"Unexpected error ({type(exc).__name__}): {exc}"[:2000]
