"""Changing a datasource's tenant (an Administrator's Change tenant): when it may change, and what changes with it.

Part of what is bound to the tenant lives in packages above this one: the user import's state (imports/) and single
sign-on (sso/). They register here at start-up, so this package imports neither:

- `on_tenant_bound(check)`: `check(datasource)` is true when the datasource holds state of its tenant that must not
  move to another (the change is then refused);
- `on_tenant_changed(listener)`: `listener(datasource, old_tenant_id)` runs in the change's transaction, does its
  part and says what it did (for the audit record and the page).

Nothing here commits, flashes or renders: the page commits the change together with its audit records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from core import audit
from core.extensions import db
from core.models import Datasource
from datasources.authorization import keep_grant
from jobs.models import ScheduledTask
from office365.authorization import Grant


@dataclass(frozen=True)
class TenantChangeEffect:
    """What a listener did: details for the audit record, and a sentence for the page (blank: nothing to say)."""

    details: dict[str, Any] = field(default_factory=dict)
    notice: str = ""


@dataclass(frozen=True)
class TenantChange:
    ok: bool
    message: str


TenantBound = Callable[[Datasource], bool]
TenantChanged = Callable[[Datasource, str | None], TenantChangeEffect]

_bound_checks: list[TenantBound] = []
_listeners: list[TenantChanged] = []


def on_tenant_bound(check: TenantBound) -> None:
    if check not in _bound_checks:
        _bound_checks.append(check)


def on_tenant_changed(listener: TenantChanged) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def _blocker(datasource: Datasource) -> str | None:
    if not datasource.tenant_id:
        return "This data source has no tenant yet: click Authorize."
    # An import task binds the datasource to its tenant; a keep-alive task works as well with the next tenant's grant.
    tasks = db.session.scalar(select(func.count(ScheduledTask.id)).where(
        ScheduledTask.datasource_id == datasource.id, ScheduledTask.kind == ScheduledTask.KIND_IMPORT))
    if tasks or any(check(datasource) for check in _bound_checks):
        return (f"The tenant of {datasource.name} cannot change: it imports users from "
                f"{datasource.tenant_name or datasource.tenant_id}, and its imported users, groups and sync state "
                "belong to that tenant. Create a new data source for the other tenant instead. Nothing was changed.")
    return None


def refusal(datasource: Datasource) -> str | None:
    """Why the tenant of `datasource` cannot change now (audited as refused, not committed), or None."""
    reason = _blocker(datasource)
    if reason:
        audit.record("datasource.change_tenant", datasource.name, outcome="refused", reason=reason)
    return reason


def change_tenant(datasource: Datasource, grant: Grant) -> TenantChange:
    """Keep a grant from another tenant, if nothing binds the datasource to its tenant (checked again: an import
    may have been set up since the button was clicked) and the connection test passes with it; then every
    registered listener does its part. Audited and not committed (a failed test's undo is: see `keep_grant`)."""
    reason = refusal(datasource)
    if reason:
        return TenantChange(False, reason)
    old_id, old_name = datasource.tenant_id, datasource.tenant_name
    test = keep_grant(datasource, grant)
    if not test.ok:
        audit.record("datasource.authorize", datasource.name, outcome="failure", reason=test.message)
        return TenantChange(False, test.message)
    effects = [listener(datasource, old_id) for listener in _listeners]
    details = {key: value for effect in effects for key, value in effect.details.items()}
    audit.record("datasource.change_tenant", datasource.name, from_tenant_id=old_id, from_tenant_name=old_name,
                 tenant_id=grant.tenant_id, tenant_name=datasource.tenant_name, authorized_by=grant.username,
                 scopes=grant.scopes, **details)
    message = " ".join([f"{test.message}. Tenant changed from {old_name or old_id} to "
                        f"{datasource.tenant_name or grant.tenant_id}.", *(e.notice for e in effects if e.notice)])
    return TenantChange(True, message)
