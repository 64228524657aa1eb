"""`flask import run|status`: a datasource's user import from the command line."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from core.extensions import db
from core.models import Datasource
from imports.models import UserImport
from jobs.models import ScheduledTask, TaskRun
from jobs.runner import create_run, execute_run, sweep_stale

import_cli = AppGroup("import", help="Import users from Office 365 datasources.")


def _datasource(name: str) -> Datasource:
    ds = db.session.scalar(select(Datasource).where(func.lower(Datasource.name) == name.strip().lower()))
    if ds is None:
        raise click.ClickException(f"No data source named {name!r}.")
    return ds


def _counts(run: TaskRun) -> str:
    return ", ".join(f"{name} {getattr(run, name)}" for name in TaskRun.COUNTS) + \
        f"; {run.pages} pages, {run.graph_requests} Graph requests"


def _sync_state(user_import: UserImport | None) -> str:
    if user_import is None:
        return "never imported"
    waiting = user_import.staged_pages
    mid_round = user_import.users_next or user_import.groups_next
    return (f"phase {user_import.phase}, {'resuming mid-round' if mid_round else 'between rounds'}, "
            f"{f'{waiting} page(s) read and not yet applied, ' if waiting else ''}"
            f"{'delta link stored' if user_import.users_delta else 'next run is a full sync'}")


@import_cli.command("run")
@click.argument("datasource")
@click.option("--dry-run", is_flag=True, help="Show what would change, change nothing.")
@click.option("--confirm-removals", is_flag=True, help="Apply removals even above the removal guard.")
def import_run(datasource: str, dry_run: bool, confirm_removals: bool) -> None:
    """Run DATASOURCE's user import now, in this process (resumes an interrupted one)."""
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
    sweep_stale()
    for ds in db.session.scalars(select(Datasource).order_by(Datasource.name)):
        user_import = db.session.scalar(select(UserImport).where(UserImport.datasource_id == ds.id))
        last = db.session.scalar(select(TaskRun).where(TaskRun.datasource_id == ds.id,
                                                       TaskRun.kind == ScheduledTask.KIND_IMPORT)
                                 .order_by(TaskRun.id.desc()).limit(1))
        click.echo(f"{ds.name}: {_sync_state(user_import)}")
        if last is not None:
            click.echo(f"  last run #{last.id} ({last.trigger}{', dry run' if last.dry_run else ''}): {last.status}, "
                       f"{_counts(last)}")
            if last.error:
                click.echo(f"  error: {last.error}")
