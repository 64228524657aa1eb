"""`flask policies ...`: the access policy document from the command line.

    flask policies export > policies.yaml          the current version (or --version N) as YAML
    flask policies import policies.yaml [--dry-run] validate, show the changes, save a new version (audited)
    flask policies versions                        the latest versions, who saved them and when
    flask policies check --user EMAIL --url URL    What if?: the decision and the rules tried, by the same evaluator

A file with problems (YAML syntax, wrong types, unknown keys, a bad CIDR, host or glob, an unknown group) is
reported with line numbers, nothing is saved, and the exit status is 1.
"""

from __future__ import annotations

import sys
import time
from typing import Any
from urllib.parse import urlsplit

import click
from flask.cli import AppGroup
from sqlalchemy import select

from core.extensions import db
from core.models import Group, User, group_members
from policies import service, yaml_io
from policies.evaluate import RequestFacts, explain

policies_cli = AppGroup("policies", help="Access policies: the rules /auth/verify applies.")


@policies_cli.command("export")
@click.option("--version", "number", type=int, default=None, help="A saved version (default: the current one).")
def export(number: int | None) -> None:
    """Write the access policies as YAML to standard output."""
    if number is None:
        number, document = service.current()
    else:
        row = service.version(number)
        if row is None:
            raise click.ClickException(f"There is no version {number}.")
        document = service.refresh_group_names(service.normalize(row.document))
    click.echo(yaml_io.dump(document, number), nl=False)


@policies_cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--dry-run", is_flag=True, help="Check the file and show the changes; save nothing.")
@click.option("--note", default="", help="A note kept with the new version.")
@click.option("--actor", default="cli", show_default=True, help="Who makes the change (audit log).")
def import_(path: str, dry_run: bool, note: str, actor: str) -> None:
    """Replace the access policies with the YAML file PATH (- for standard input) as a new version."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"Cannot read {path}: {exc}") from None
    name = "<stdin>" if path == "-" else path
    try:
        document = yaml_io.load(text)
    except yaml_io.PolicyFileInvalid as exc:
        for problem in exc.problems:
            click.echo(problem.describe(name), err=True)
        click.echo(f"{len(exc.problems)} problem(s); nothing was changed.", err=True)
        sys.exit(1)
    number, current = service.current()
    changes = service.diff(current, document)
    for line in changes:
        click.echo(f"  {line}")
    if dry_run:
        click.echo(f"Dry run: {len(changes)} change(s) to version {number}; nothing was saved.")
        return
    if not changes and number:
        click.echo(f"No changes to version {number}; nothing was saved.")
        return
    try:
        saved = service.save(document, actor=actor, note=note or f"imported from {name}")
    except service.PolicyInvalid as exc:  # e.g. a group renamed between the check and the save
        for error in exc.errors:
            click.echo(f"{name}: {error}", err=True)
        sys.exit(1)
    click.echo(f"Saved version {saved} ({len(document['rules'])} rules).")


@policies_cli.command("versions")
@click.option("--limit", type=int, default=20, show_default=True)
def list_versions(limit: int) -> None:
    """The latest saved versions."""
    for row in service.versions(limit):
        rules = len((row.document or {}).get("rules") or ())
        click.echo(f"{row.number}\t{row.created_at:%Y-%m-%d %H:%M}Z\t{row.created_by}\t{rules} rules\t{row.note}")


def identity_of(user: User, groups: tuple[str, ...], roles: tuple[str, ...], acrs: tuple[str, ...],
                provider: str | None, minutes_ago: int) -> dict[str, Any]:
    """What the rules would read from this user's session: e-mail, tenant, the Office 365 groups the gateway knows
    they are in (imported groups' members) plus `groups`, and the claims given on the command line."""
    known = db.session.scalars(select(Group.source_group_id).join(group_members, group_members.c.group_id == Group.id)
                               .where(group_members.c.user_id == user.id, Group.source_group_id.is_not(None)))
    return {"user": user.email, "email": user.email, "name": user.display_name, "tid": user.tenant_id,
            "groups": [*{str(g) for g in known if g}, *groups], "roles": list(roles), "acrs": list(acrs),
            "provider": provider, "auth_time": int(time.time()) - minutes_ago * 60}


@policies_cli.command("check")
@click.option("--user", "email", default=None, help="The gateway user's e-mail (left out: not signed in).")
@click.option("--url", required=True, help="The URL the visitor asks for, e.g. https://app.example.com/reports/.")
@click.option("--method", default="GET", show_default=True)
@click.option("--ip", default=None, help="The client address (for rules with networks).")
@click.option("--group", "groups", multiple=True, help="A group object id the user's token would carry (repeat).")
@click.option("--role", "roles", multiple=True, help="An app role in the token's roles claim (repeat).")
@click.option("--acr", "acrs", multiple=True, help="An authentication context the session holds, e.g. c1 (repeat).")
@click.option("--provider", default=None, help="The sign-in provider's name.")
@click.option("--signed-in-minutes-ago", "minutes_ago", type=int, default=0, show_default=True)
def check(email: str | None, url: str, method: str, ip: str | None, groups: tuple[str, ...], roles: tuple[str, ...],
          acrs: tuple[str, ...], provider: str | None, minutes_ago: int) -> None:
    """What if? The decision /auth/verify would give, with the rules tried in order."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.ClickException("--url must be an absolute http(s) URL.")
    identity = None
    if email:
        user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise click.ClickException(f"No user {email}.")
        identity = identity_of(user, groups, roles, acrs, provider, minutes_ago)
    decision, trace = explain(RequestFacts(method.upper(), parts.hostname, parts.path or "/", ip), identity)
    number, _ = service.current()
    click.echo(f"Access policies version {number}; {method.upper()} {url} as {email or 'someone not signed in'}")
    for step in trace:
        label = f"{step.position:>3}. {step.rule_name}" if step.position else "     (no rule)"
        click.echo(f"{label}: {step.result}, {step.detail}")
    rule = f" by rule '{decision.rule_name}'" if decision.rule_name else ""
    click.echo(f"Decision: {decision.outcome}{rule}" + (f": {decision.reason}" if decision.reason else ""))
    if decision.granting_groups:
        click.echo("Groups that would grant access: " + ", ".join(
            f"{g['name']} ({g['id']})" for g in decision.granting_groups))
