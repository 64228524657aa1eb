"""Live access: Entra's changes (a disable, a group removal, revoked sign-in sessions) reach live gateway sessions
within a minute, through Microsoft Graph change notifications or, when they cannot work, a light delta poll.

Layer: above the features it joins (imports keeps the directory mirror current; sso keeps the sessions), below
the web layers (admin shows its state)."""

from __future__ import annotations

from flask import Flask

from datasources.tenant_change import on_tenant_changed
from imports.job import describe_failure, release_lock
from jobs import registry
from live.subscriptions import forget_on_tenant_change, maintain_all
from live.sync import KIND, forget_round, keep_going, run_round


def init_app(app: Flask) -> None:
    """The live_sync job kind (a debounced delta round, resumable like the import it runs) and the tick hook."""
    registry.register(KIND, run_round, describe_failure=describe_failure, release=release_lock, resumable=True,
                      forget=forget_round)
    registry.on_tick("live access", keep_going)
    registry.on_tick("live subscriptions", maintain_all)  # Graph subscriptions kept alive, fallback_reason kept
    on_tenant_changed(forget_on_tenant_change)  # the old tenant's subscriptions are out of the new grant's reach
