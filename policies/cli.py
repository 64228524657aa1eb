"""`flask policies ...`: the access policy document from the command line.

    flask policies export > policies.yaml          the current version (or --version N) as YAML
    flask policies import policies.yaml [--dry-run] validate, show the changes, save a new version (audited)
    flask policies versions                        the latest versions, who saved them and when

A file with problems (YAML syntax, wrong types, unknown keys, a bad CIDR, host or glob, an unknown group) is
reported with line numbers, nothing is saved, and the exit status is 1.
"""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from policies import service, yaml_io

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
