"""`flask users ...` commands, registered by the factory."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import func

from core import audit
from core.extensions import db
from core.models import Role, User, ensure_roles, role_by_name

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
    audit.record("user.create_admin" if created else "user.promote_admin", user.email, actor="cli")
    db.session.commit()
    click.echo(f"{'Created' if created else 'Updated'} administrator {user.email}")


@users_cli.command("list")
def list_users() -> None:
    """Print every local user with their roles."""
    for user in db.session.scalars(db.select(User).order_by(User.email)):
        state = "active" if user.active else "disabled"
        click.echo(f"{user.email}\t{user.display_name}\t{', '.join(sorted(user.role_names)) or '-'}\t{state}")


def init_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
