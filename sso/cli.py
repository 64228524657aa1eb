"""`flask sso ...`: the Single Sign-On settings and providers from the command line (automation)."""

from __future__ import annotations

import json
import sys

import click
from flask.cli import AppGroup

from core import audit
from core.extensions import db
from core.models import Datasource, Role
from sso.models import SsoProvider
from sso.providers import ProviderProblem, add_generic_provider, add_office365_provider, remove_provider
from sso.settings import forget_settings, settings_row
from sso.signing_keys import DEFAULT_ACTIVATE_IN, key_states, prune, rotate

sso_cli = AppGroup("sso", help="Single sign-on settings and identity providers.")
providers_cli = AppGroup("providers", help="Identity providers.")
sso_cli.add_command(providers_cli)


@providers_cli.command("add")
@click.option("--name", default="", help="Short name, used in /sso/login/<name> (with --datasource: made from the "
                                          "datasource's name when left out).")
@click.option("--issuer", help="Issuer URL of a generic OpenID Connect provider (https; http only on loopback).")
@click.option("--client-id", help="Client id at that provider.")
@click.option("--client-secret-stdin", is_flag=True, help="Read the client secret from standard input.")
@click.option("--datasource", help="Instead of --issuer: a ready Office 365 datasource with SSO ticked.")
@click.option("--scopes", default="openid profile email", show_default=True)
@click.option("--user-claim", default="preferred_username", show_default=True)
@click.option("--response-mode", type=click.Choice(["query", "form_post"]), default="query", show_default=True)
@click.option("--trust-unverified-email", is_flag=True,
              help="The provider omits email_verified; trust its e-mails (otherwise an e-mail is used only when "
                   "email_verified is true).")
def providers_add(name: str, issuer: str | None, client_id: str | None, client_secret_stdin: bool,
                  datasource: str | None, scopes: str, user_claim: str, response_mode: str,
                  trust_unverified_email: bool) -> None:
    """Add an identity provider."""
    try:
        if datasource:
            found = db.session.scalar(db.select(Datasource).filter_by(name=datasource))
            if found is None:
                raise ProviderProblem(f"No datasource named {datasource!r}.")
            provider = add_office365_provider(name, found, user_claim=user_claim, response_mode=response_mode)
        else:
            secret = sys.stdin.readline().rstrip("\r\n") if client_secret_stdin else ""
            provider = add_generic_provider(name, issuer or "", client_id or "", secret, scopes=scopes,
                                            user_claim=user_claim, response_mode=response_mode,
                                            trust_unverified_email=trust_unverified_email)
    except ProviderProblem as exc:
        raise click.ClickException(str(exc)) from None
    audit.record("sso.provider.add", provider.name, actor="cli", kind=provider.kind,
                 trust_unverified_email=provider.trust_unverified_email)
    db.session.commit()
    click.echo(f"Added provider {provider.name} ({provider.kind})")


@providers_cli.command("list")
def providers_list() -> None:
    """Print the providers (secrets are never printed)."""
    for provider in db.session.scalars(db.select(SsoProvider).order_by(SsoProvider.name)):
        where = provider.issuer or f"datasource #{provider.datasource_id}"
        secret = "secret set" if provider.client_secret else "no secret"
        emails = "-" if provider.kind == SsoProvider.OFFICE365 else \
            "e-mails trusted without email_verified" if provider.trust_unverified_email else "verified e-mails only"
        click.echo(f"{provider.name}\t{provider.kind}\t{where}\t{provider.client_id or '-'}\t{secret}\t"
                   f"{'enabled' if provider.enabled else 'disabled'}\t{emails}")


@providers_cli.command("remove")
@click.argument("name")
def providers_remove(name: str) -> None:
    """Remove a provider."""
    provider = db.session.scalar(db.select(SsoProvider).filter_by(name=name))
    if provider is None:
        raise click.ClickException(f"No provider named {name!r}.")
    remove_provider(provider)
    audit.record("sso.provider.remove", name, actor="cli")
    db.session.commit()
    click.echo(f"Removed provider {name}")


@sso_cli.command("settings")
@click.option("--enable/--disable", "enabled", default=None, help="Single sign-on on or off.")
@click.option("--auto-redirect/--no-auto-redirect", default=None, help="Send /login straight to the provider.")
@click.option("--create-users/--no-create-users", default=None, help="Create users on first sign-in.")
@click.option("--bypass-role", help="Role whose members may still use /login?local=1.")
@click.option("--idle-minutes", type=click.IntRange(1, 7 * 24 * 60), help="Session idle timeout.")
@click.option("--absolute-hours", type=click.IntRange(1, 24 * 90), help="Session absolute timeout.")
@click.option("--leeway-seconds", type=click.IntRange(0, 600), help="Clock skew allowed on ID tokens.")
@click.option("--policies", help='Forward-auth policies as JSON: {"staff": {"groups": [...], "domains": [...]}}.')
def settings(enabled: bool | None, auto_redirect: bool | None, create_users: bool | None, bypass_role: str | None,
             idle_minutes: int | None, absolute_hours: int | None, leeway_seconds: int | None,
             policies: str | None) -> None:
    """Show the settings, changing the ones given."""
    row = settings_row()
    parsed = None
    if policies is not None:
        try:
            parsed = json.loads(policies)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or not all(
                isinstance(rules, dict) and set(rules) <= {"groups", "emails", "domains"} for rules in parsed.values()):
            raise click.ClickException('--policies must be JSON like {"staff": {"domains": ["example.com"]}}.')
    if bypass_role is not None and bypass_role not in Role.ALL:
        raise click.ClickException(f"--bypass-role must be one of: {', '.join(Role.ALL)}.")
    changes = {"enabled": enabled, "auto_redirect": auto_redirect, "create_users": create_users,
               "bypass_role": bypass_role, "idle_timeout_minutes": idle_minutes,
               "absolute_timeout_hours": absolute_hours, "clock_leeway_seconds": leeway_seconds, "policies": parsed}
    changed = {key: value for key, value in changes.items() if value is not None}
    for key, value in changed.items():
        setattr(row, key, value)
    if changed:
        row.updated_by = "cli"
        audit.record("sso.settings", "Single Sign-On", actor="cli",
                     **{k: (sorted(v) if k == "policies" else v) for k, v in changed.items()})
    db.session.commit()
    forget_settings()
    for key in ("enabled", "auto_redirect", "create_users", "bypass_role", "idle_timeout_minutes",
                "absolute_timeout_hours", "clock_leeway_seconds", "group_cache_minutes"):
        click.echo(f"{key} = {getattr(row, key)}")
    click.echo(f"policies = {sorted((row.policies or {}).keys())}")


keys_cli = AppGroup("keys", help="The ES256 keys that sign forward-auth assertions (published at "
                                 "/.well-known/jwks.json).")
sso_cli.add_command(keys_cli)


@keys_cli.command("list")
def keys_list() -> None:
    """Print the keys: kid, when it signs from, and its state (signing, next, retired)."""
    for kid, signs_from, state in key_states():
        click.echo(f"{kid}\tsigns from {signs_from:%Y-%m-%d %H:%M:%S} UTC\t{state}")


@keys_cli.command("rotate")
@click.option("--activate-in", type=click.IntRange(min=0), default=DEFAULT_ACTIVATE_IN, show_default=True,
              help="Seconds before the new key signs. It is published at once; apps caching the JWKS (max-age "
                   "300 s) need it before they meet it.")
def keys_rotate(activate_in: int) -> None:
    """Add a new signing key (the old ones stay published until `prune`)."""
    row = rotate(activate_in)
    audit.record("sso.key.rotate", row.kid, actor="cli", activate_in=activate_in)
    db.session.commit()
    click.echo(f"Added key {row.kid}; it signs from {row.activates_at:%Y-%m-%d %H:%M:%S} UTC. Run "
               "`flask sso keys prune` once it has signed for a few minutes.")


@keys_cli.command("prune")
def keys_prune() -> None:
    """Remove the keys older than the signing one, once no assertion they signed can still be valid."""
    gone = prune()
    for kid in gone:
        audit.record("sso.key.prune", kid, actor="cli")
    db.session.commit()
    click.echo(f"Removed {len(gone)} key(s){': ' + ', '.join(gone) if gone else ''}.")
