"""The SSO settings row, read through a short per-process cache (every worker sees a change within seconds)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from core.extensions import db
from core.models import Datasource
from sso.models import SsoProvider, SsoSettings

CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class SettingsSnapshot:
    enabled: bool = False
    auto_redirect: bool = False
    create_users: bool = False
    bypass_role: str = "Administrator"
    idle_timeout_minutes: int = 60
    absolute_timeout_hours: int = 12
    clock_leeway_seconds: int = 60
    group_cache_minutes: int = 15
    policies: dict[str, Any] = field(default_factory=dict)


def settings_row() -> SsoSettings:
    """The one settings row, created with the defaults on first use."""
    row = db.session.get(SsoSettings, 1)
    if row is None:
        row = SsoSettings(id=1, policies={})
        db.session.add(row)
        db.session.flush()
    return row


def current_settings() -> SettingsSnapshot:
    cached = current_app.extensions.get("sso_settings")
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    row = db.session.get(SsoSettings, 1)
    snapshot = SettingsSnapshot() if row is None else SettingsSnapshot(
        enabled=row.enabled, auto_redirect=row.auto_redirect, create_users=row.create_users,
        bypass_role=row.bypass_role, idle_timeout_minutes=row.idle_timeout_minutes,
        absolute_timeout_hours=row.absolute_timeout_hours, clock_leeway_seconds=row.clock_leeway_seconds,
        group_cache_minutes=row.group_cache_minutes, policies=dict(row.policies or {}))
    current_app.extensions["sso_settings"] = (time.monotonic() + CACHE_SECONDS, snapshot)
    return snapshot


def forget_settings() -> None:
    current_app.extensions.pop("sso_settings", None)


def enabled_providers() -> list[SsoProvider]:
    if not current_settings().enabled:
        return []
    providers = db.session.scalars(db.select(SsoProvider).filter_by(enabled=True).order_by(SsoProvider.name)).all()
    return [provider for provider in providers if provider_usable(provider)]


def provider_usable(provider: SsoProvider) -> bool:
    """An Office 365 provider needs its datasource ready with SSO ticked; a generic one its issuer and client."""
    if provider.kind == SsoProvider.OFFICE365:

        datasource = db.session.get(Datasource, provider.datasource_id) if provider.datasource_id else None
        return bool(datasource and datasource.sso_enabled and datasource.status == Datasource.READY
                    and datasource.tenant_id)
    return bool(provider.issuer and provider.client_id)


def sign_in_labels(providers: list[SsoProvider]) -> dict[str, str]:
    """What each sign-in button says after "Sign in with": "Office 365" for the Office 365 provider, with its
    datasource's display name when there are several; a generic provider's name."""

    office365 = [p for p in providers if p.kind == SsoProvider.OFFICE365]
    labels = {p.name: p.name for p in providers if p.kind != SsoProvider.OFFICE365}
    for provider in office365:
        datasource = db.session.get(Datasource, provider.datasource_id) if provider.datasource_id else None
        labels[provider.name] = ("Office 365" if len(office365) == 1 or datasource is None
                                 else f"Office 365 ({datasource.name})")
    return labels
