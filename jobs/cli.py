"""`flask import run|status` and `flask jobs worker|tick`."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from core.extensions import db
from core.models import Datasource
from jobs.models import ScheduledTask, TaskRun, UserImport

import_cli = AppGroup("import", help="Import users from Office 365 datasources.")
jobs_cli = AppGroup("jobs", help="The background job runner.")


def _datasource(name: str) -> Datasource:
    ds = db.session.scalar(select(Datasource).where(func.lower(Datasource.name) == name.strip().lower()))
    if ds is None:
        raise click.ClickException(f"No data source named {name!r}.")
    return ds


def _counts(run: TaskRun) -> str:
    return ", ".join(f"{name} {getattr(run, name)}" for name in TaskRun.COUNTS) + \
        f"; {run.pages} pages, {run.graph_requests} Graph requests"


@import_cli.command("run")
@click.argument("datasource")
@click.option("--dry-run", is_flag=True, help="Show what would change, change nothing.")
@click.option("--confirm-removals", is_flag=True, help="Apply removals even above the removal guard.")
def import_run(datasource: str, dry_run: bool, confirm_removals: bool) -> None:
    """Run DATASOURCE's user import now, in this process (resumes an interrupted one)."""
    from jobs.runner import create_run, execute_run

    ds = _datasource(datasource)
    run = create_run(kind=ScheduledTask.KIND_IMPORT, datasource_id=ds.id, trigger="cli", actor="cli",
                     dry_run=dry_run, confirm_removals=confirm_removals)
    click.echo(f"Run #{run.id}: importing from {ds.name}{' (dry run)' if dry_run else ''} ...")
    finished = execute_run(run.id)
    assert finished is not None
    click.echo(f"{finished.status}: {_counts(finished)}")
    for kind, names in (finished.summary or {}).get("names", {}).items():
        click.echo(f"  {kind}: {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}")
    for name in (finished.summary or {}).get("guard", {}).get("names", [])[:20]:
        click.echo(f"  would disable/remove: {name}")
    if finished.error:
        click.echo(finished.error, err=True)
    if finished.status == TaskRun.CONFIRM:
        raise SystemExit(2)
    if finished.status != TaskRun.SUCCEEDED:
        raise SystemExit(1)


@import_cli.command("status")
def import_status() -> None:
    """Each datasource's import: sync state, last run, running runs."""
    from jobs.runner import sweep_stale

    sweep_stale()
    for ds in db.session.scalars(select(Datasource).order_by(Datasource.name)):
        imp = db.session.scalar(select(UserImport).where(UserImport.datasource_id == ds.id))
        last = db.session.scalar(select(TaskRun).where(TaskRun.datasource_id == ds.id,
                                                       TaskRun.kind == ScheduledTask.KIND_IMPORT)
                                 .order_by(TaskRun.id.desc()).limit(1))
        waiting = imp.staged_pages if imp is not None else 0
        state = "never imported" if imp is None else (
            f"phase {imp.phase}, {'resuming mid-round' if imp.users_next or imp.groups_next else 'between rounds'}, "
            f"{f'{waiting} page(s) read and not yet applied, ' if waiting else ''}"
            f"{'delta link stored' if imp.users_delta else 'next run is a full sync'}")
        click.echo(f"{ds.name}: {state}")
        if last is not None:
            click.echo(f"  last run #{last.id} ({last.trigger}{', dry run' if last.dry_run else ''}): {last.status}, "
                       f"{_counts(last)}")
            if last.error:
                click.echo(f"  error: {last.error}")


@jobs_cli.command("worker")
@click.option("--workers", default=2, show_default=True, help="Worker threads.")
def jobs_worker(workers: int) -> None:
    """Consume the job queue (with REDIS_URL: run one or more of these next to the web processes)."""
    from huey.consumer import Consumer

    from jobs.queue import get_huey, queue_name

    huey = get_huey()
    from flask import current_app

    click.echo(f"Job worker on queue {queue_name(current_app)} with {workers} thread(s); Ctrl-C stops it.")
    Consumer(huey, workers=workers, worker_type="thread", max_delay=1.0).run()


@jobs_cli.command("tick")
def jobs_tick() -> None:
    """Claim and enqueue the scheduled runs that are due (the workers do this every minute)."""
    from jobs.scheduler import tick

    for run_id in tick():
        click.echo(f"queued run #{run_id}")
