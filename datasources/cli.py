"""`flask datasources ...`: inspect and maintain data sources (registered by `datasources.init_app`)."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import func

from core import audit
from core.extensions import db
from core.models import Datasource
from datasources.grant import keep_alive, reauthorization_due, run_connection_test

datasources_cli = AppGroup("datasources", help="Inspect and maintain data sources.")


@datasources_cli.command("list")
def list_datasources() -> None:
    """Print each data source with its status and grant."""
    for ds in db.session.scalars(db.select(Datasource).order_by(Datasource.name)):
        due = reauthorization_due(ds)
        click.echo(f"{ds.name}\t{ds.kind}\t{ds.status}\ttenant={ds.tenant_id or '-'}\t"
                   f"authorized_by={ds.authorized_by or '-'}\treauthorize_by={due:%Y-%m-%d}" if due else
                   f"{ds.name}\t{ds.kind}\t{ds.status}\tnot authorized")


def _datasource_named(name: str) -> Datasource:
    datasource = db.session.scalar(db.select(Datasource).where(func.lower(Datasource.name) == name.lower()))
    if datasource is None:
        raise click.ClickException(f"No data source named {name!r}.")
    return datasource


@datasources_cli.command("test")
@click.argument("name")
def test_datasource(name: str) -> None:
    """Run the connection test of one data source (exit code 1 when it fails)."""
    datasource = _datasource_named(name)
    result = run_connection_test(datasource)
    audit.record("datasource.test", datasource.name, actor="cli", outcome="success" if result.ok else "failure",
                 message=result.message)
    db.session.commit()
    click.echo(result.message)
    if not result.ok:
        raise SystemExit(1)


@datasources_cli.command("refresh")
def refresh_datasources() -> None:
    """Keep-alive: redeem each authorized data source's refresh token and store the rotated tokens."""
    failures = 0
    for ds in db.session.scalars(db.select(Datasource).where(Datasource.status != Datasource.INCOMPLETE)):
        result = keep_alive(ds)
        failures += not result.ok
        audit.record("datasource.refresh", ds.name, actor="cli", outcome="success" if result.ok else "failure",
                     message=result.message)
        db.session.commit()
        click.echo(f"{ds.name}: {result.message}")
    if failures:
        raise SystemExit(1)
