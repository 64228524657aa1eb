"""Adding and removing providers, shared by the admin page and the CLI (one set of rules)."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from flask import current_app

from core.crypto import secret_box
from core.extensions import db
from core.models import Datasource
from sso.models import SsoProvider
from sso.oidc import forget_provider
from sso.provider_http import host_allowed

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
CLAIMS = {"preferred_username", "email", "upn", "sub", "name", "unique_name", "oid"}


class ProviderProblem(ValueError):
    """A provider setting is invalid; the message says which and why."""


def check_name(name: str) -> str:
    name = name.strip().lower()
    if not NAME.match(name):
        raise ProviderProblem("The name may use a-z, 0-9, - and _ (up to 64 characters), e.g. contoso.")
    if db.session.scalar(db.select(SsoProvider.id).filter_by(name=name)) is not None:
        raise ProviderProblem(f"A provider named {name!r} exists already.")
    return name


def name_from(display_name: str, fallback: str = "office365") -> str:
    """A free provider name (the slug in /sso/login/<name>) made from a datasource's display name:
    `Zürich Office 365!` -> `zurich-office-365`, then `-2`, `-3`... when taken; `fallback` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:56].strip("-") or fallback
    taken = set(db.session.scalars(db.select(SsoProvider.name).where(SsoProvider.name.like(f"{base}%"))))
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def check_issuer(issuer: str) -> str:
    """https on a public host. With SSO_ALLOW_PRIVATE_PROVIDERS (development, tests): also loopback and private
    addresses, over plain http too. Names are resolved and checked again at each connection."""
    issuer = issuer.strip().rstrip("/")
    parts = urlsplit(issuer)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ProviderProblem("The issuer must be a URL such as https://login.example.com/realm.") from None
    if not parts.hostname or parts.query or parts.fragment or parts.username or parts.password:
        raise ProviderProblem("The issuer must be a URL such as https://login.example.com/realm.")
    allow_private = bool(current_app.config.get("SSO_ALLOW_PRIVATE_PROVIDERS"))
    if not host_allowed(parts.hostname, allow_private=allow_private):
        raise ProviderProblem(f"The issuer's host {parts.hostname} is a loopback, private, link-local or metadata "
                              "address; such providers are allowed only with SSO_ALLOW_PRIVATE_PROVIDERS=1 "
                              "(development), and link-local ones never.")
    if parts.scheme != "https" and not (parts.scheme == "http" and allow_private
                                        and not host_allowed(parts.hostname, allow_private=False)):
        raise ProviderProblem("The issuer must use https (plain http only for a loopback or private host with "
                              "SSO_ALLOW_PRIVATE_PROVIDERS=1).")
    return issuer


def check_common(scopes: str, user_claim: str, response_mode: str) -> None:
    if "openid" not in scopes.split():
        raise ProviderProblem("The scopes must include openid.")
    if user_claim not in CLAIMS:
        raise ProviderProblem(f"The user claim must be one of {', '.join(sorted(CLAIMS))}.")
    if response_mode not in ("query", "form_post"):
        raise ProviderProblem("The response mode is query or form_post.")


def add_generic_provider(name: str, issuer: str, client_id: str, client_secret: str, *,
                         scopes: str = "openid profile email", user_claim: str = "preferred_username",
                         response_mode: str = "query", trust_unverified_email: bool = False) -> SsoProvider:
    """`trust_unverified_email`: the provider omits `email_verified`; use its `email` all the same."""
    name, issuer = check_name(name), check_issuer(issuer)
    check_common(scopes, user_claim, response_mode)
    if not client_id.strip() or len(client_id) > 255:
        raise ProviderProblem("The client id is required.")
    provider = SsoProvider(name=name, kind=SsoProvider.OIDC, issuer=issuer, client_id=client_id.strip(),
                           client_secret=secret_box().encrypt(client_secret) if client_secret else None,
                           scopes=" ".join(scopes.split()), user_claim=user_claim, response_mode=response_mode,
                           trust_unverified_email=trust_unverified_email)
    db.session.add(provider)
    db.session.flush()
    current_app.extensions.pop("sso_provider_origins", None)
    return provider


def add_office365_provider(name: str | None, datasource: Datasource, *, user_claim: str = "preferred_username",
                           response_mode: str = "query") -> SsoProvider:
    """`name` blank: made from the datasource's display name (the admin page asks for none)."""
    name = check_name(name) if name and name.strip() else name_from(datasource.name)
    check_common("openid", user_claim, response_mode)
    if not datasource.sso_enabled or datasource.status != Datasource.READY:
        raise ProviderProblem(f"The datasource {datasource.name!r} must be ready with \"Enable Azure OpenID "
                              "Connect Single-Sign-On\" ticked.")
    provider = SsoProvider(name=name, kind=SsoProvider.OFFICE365, datasource_id=datasource.id,
                           scopes="openid profile email", user_claim=user_claim, response_mode=response_mode)
    db.session.add(provider)
    db.session.flush()
    current_app.extensions.pop("sso_provider_origins", None)
    return provider


def remove_provider(provider: SsoProvider) -> None:
    forget_provider(provider.id)
    current_app.extensions.pop("sso_provider_origins", None)
    db.session.delete(provider)
    db.session.flush()
