"""`flask users ...` commands, registered by the factory."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import func

from core import audit
from core.extensions import db
from core.models import Datasource, Role, User, ensure_roles, role_by_name

users_cli = AppGroup("users", help="Manage local user accounts.")


@users_cli.command("create-admin")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_admin(email: str, name: str, password_stdin: bool) -> None:
    """Create (or promote) a local Administrator: the break-glass account."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.ClickException("The password must be at least 8 characters long.")
    ensure_roles()
    user = db.session.scalar(db.select(User).where(func.lower(User.email) == email.strip().lower()))
    created = user is None
    if user is None:
        user = User(email=email, display_name=name or email.split("@")[0])
        db.session.add(user)
    user.set_password(password)
    user.active = True
    admin = role_by_name(Role.ADMINISTRATOR)
    if admin not in user.roles:
        user.roles.append(admin)
    audit.record("user.create_admin" if created else "user.promote_admin", user.email, actor="cli", commit=False)
    db.session.commit()
    click.echo(f"{'Created' if created else 'Updated'} administrator {user.email}")


@users_cli.command("list")
def list_users() -> None:
    """Print every local user with their roles."""
    for user in db.session.scalars(db.select(User).order_by(User.email)):
        state = "active" if user.active else "disabled"
        click.echo(f"{user.email}\t{user.display_name}\t{', '.join(sorted(user.role_names)) or '-'}\t{state}")


datasources_cli = AppGroup("datasources", help="Inspect and maintain data sources.")


@datasources_cli.command("list")
def list_datasources() -> None:
    """Print each data source with its status and grant."""
    from datasources.grant import reauthorization_due

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
    from datasources.grant import run_connection_test

    datasource = _datasource_named(name)
    result = run_connection_test(datasource)
    audit.record("datasource.test", datasource.name, actor="cli", outcome="success" if result.ok else "failure",
                 message=result.message)
    click.echo(result.message)
    if not result.ok:
        raise SystemExit(1)


@datasources_cli.command("refresh")
def refresh_datasources() -> None:
    """Keep-alive: redeem each authorized data source's refresh token and store the rotated tokens."""
    from datasources.grant import keep_alive

    failures = 0
    for ds in db.session.scalars(db.select(Datasource).where(Datasource.status != Datasource.INCOMPLETE)):
        result = keep_alive(ds)
        failures += not result.ok
        audit.record("datasource.refresh", ds.name, actor="cli", outcome="success" if result.ok else "failure",
                     message=result.message)
        click.echo(f"{ds.name}: {result.message}")
    if failures:
        raise SystemExit(1)


def init_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(datasources_cli)
