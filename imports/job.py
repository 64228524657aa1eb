"""The user-import job: one datasource's import run (or dry run) recorded on its TaskRun."""

from __future__ import annotations

from dataclasses import replace

from flask import current_app
from sqlalchemy import update

from core.extensions import db
from core.models import Datasource
from jobs.models import TaskRun, UserImport
from jobs.runner import RunRefused, mark_failed, stale_reason
from office365.connection import graph_client
from office365.errors import Office365Error, ReauthorizationRequired
from office365.importer import Importer, RemovalGuardTripped, import_for, record_progress
from office365.importer_dryrun import DryRun


def _lock(imp: UserImport, run: TaskRun) -> None:
    """One import per datasource at a time; a holder whose worker died is failed and the lock taken over."""
    taken = db.session.execute(update(UserImport).where(UserImport.id == imp.id,
                                                        UserImport.running_run_id.is_(None))
                               .values(running_run_id=run.id)).rowcount
    db.session.commit()
    if taken:
        return
    holder_id = db.session.scalar(db.select(UserImport.running_run_id).where(UserImport.id == imp.id))
    holder = db.session.get(TaskRun, holder_id) if holder_id else None
    if holder is not None and holder.status == TaskRun.RUNNING:
        reason = stale_reason(holder)
        if reason is None:
            raise RunRefused(f"Another import of this datasource is running (run #{holder.id}); this run was "
                             "skipped.")
        mark_failed(holder, reason)
    taken = db.session.execute(update(UserImport).where(UserImport.id == imp.id,
                                                        (UserImport.running_run_id == holder_id)
                                                        | UserImport.running_run_id.is_(None))
                               .values(running_run_id=run.id)).rowcount
    db.session.commit()
    if not taken:
        raise RunRefused("Another import of this datasource started at the same moment; this run was skipped.")


def run_import(run: TaskRun) -> None:
    datasource = db.session.get(Datasource, run.datasource_id) if run.datasource_id else None
    if datasource is None:
        raise RunRefused("The datasource of this import no longer exists.")
    if datasource.status == Datasource.INCOMPLETE or not datasource.tenant_id:
        raise RunRefused(f"The datasource \"{datasource.name}\" has not been authorized yet: an administrator must "
                         "click Authorize first.")
    imp = import_for(datasource)
    db.session.commit()
    deadline = current_app.config.get("IMPORT_GRAPH_DEADLINE")

    def make_client(ds: Datasource | None = None):  # type: ignore[no-untyped-def]
        client = graph_client(ds or db.session.get(Datasource, datasource.id))
        if deadline:  # tests (and impatient operators) bound each Graph call's retries more tightly
            client.retry = replace(client.retry, deadline=float(deadline), backoff_cap=max(0.1, float(deadline) / 4))
        return client

    client = make_client(datasource)
    page_size = int(current_app.config.get("IMPORT_PAGE_SIZE", 999))
    counter: list = [lambda: client.requests_sent]
    progress = record_progress(run, lambda: counter[0]())
    if not imp.users_delta or imp.full_round and imp.phase != "idle":
        _estimate_total(run, client)
    try:
        if run.dry_run:
            outcome = DryRun(imp, datasource, client, page_size=page_size, on_page=progress).run()
        else:
            _lock(imp, run)
            importer = Importer(imp, datasource, client, confirm_removals=run.confirm_removals, page_size=page_size,
                                on_page=progress, client_factory=make_client)
            counter[0] = lambda: importer.requests_sent
            outcome = importer.run()
    except RemovalGuardTripped as exc:
        db.session.rollback()
        run.summary = {"guard": {"pending": exc.pending, "total": exc.total, "percent": exc.percent,
                                 "names": exc.names}}
        run.status, run.error = TaskRun.CONFIRM, str(exc)
        run.graph_requests = counter[0]()
        db.session.commit()
        return
    except Exception:
        db.session.rollback()
        run.graph_requests = counter[0]()
        db.session.commit()
        raise
    progress(outcome, "done")
    run.summary = outcome.summary()
    run.status = TaskRun.SUCCEEDED
    if outcome.errors:
        run.error = f"{outcome.errors} user(s) could not be imported; see the list below."
    db.session.commit()


def _estimate_total(run: TaskRun, client) -> None:  # type: ignore[no-untyped-def]
    """A full round's progress bar needs a total: the tenant's user count (one cheap request)."""
    try:
        run.total_estimate = int(str(client.request("GET", "/users/$count", advanced=True).body).strip())
    except (Office365Error, ValueError):
        return
    db.session.commit()


def describe_failure(exc: Exception) -> tuple[str, str]:
    """(status, error text) for the run history."""
    if isinstance(exc, RunRefused):
        return TaskRun.FAILED, str(exc)
    if isinstance(exc, ReauthorizationRequired):
        return TaskRun.FAILED, f"{exc} The import resumes where it stopped once the datasource is re-authorized."
    if isinstance(exc, Office365Error):
        return TaskRun.FAILED, f"{exc} The next run resumes where this one stopped."
    return TaskRun.FAILED, f"Unexpected error ({type(exc).__name__}): {exc}"[:2000]
