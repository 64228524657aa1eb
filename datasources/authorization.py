"""Authorizing a datasource: the pending flow between the redirect to Microsoft and the callback, applying the
grant it yields (kept only when the connection test passes with it, otherwise undone), and the tenant rule.

The flow is kept in the single-use pending-flow store (core.pending_flows: encrypted, expiring, taken once), keyed by
the admin's user id and MSAL's `state`, so any worker can finish it, the callback needs no cookie beyond the admin's
session, and another user's callback with the same state finds nothing (and uses nothing up).
The pages (admin/datasources.py) say what happened and audit it; nothing here flashes or renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.crypto import secret_box
from core.extensions import db
from core.models import Datasource, utcnow
from core.pending_flows import PendingFlows
from datasources.grant import ConnectionTest, microsoft_settings, run_connection_test
from office365.authorization import FLOW_LIFETIME_SECONDS, Grant, finish_authorization, start_authorization

AUTHORIZE = "authorize"
CHANGE_TENANT = "change_tenant"
PENDING = PendingFlows("datasource_authorization", timedelta(seconds=FLOW_LIFETIME_SECONDS))


@dataclass(frozen=True)
class PendingFlow:
    """A pending authorization taken from the store: whose it was, what it was for, and MSAL's flow."""

    datasource: Datasource | None
    intent: str
    flow: dict[str, Any]


def pending_key(user_id: int, state: str) -> str:
    """A flow is found only by the admin who started it."""
    return f"{user_id}:{state}"


def begin(datasource: Datasource, user_id: int, intent: str, redirect_uri: str) -> str:
    """Start MSAL's auth-code flow, keep it server-side, and return the URL to send the browser to.

    Raises `office365.authorization.AuthorizationFailed` when Microsoft cannot be asked. Commits the new flow.
    """
    flow = start_authorization(microsoft_settings(), read_write=datasource.read_write, redirect_uri=redirect_uri)
    PENDING.put(pending_key(user_id, flow["state"]), {"datasource_id": datasource.id, "intent": intent, "flow": flow})
    db.session.commit()
    return str(flow["auth_uri"])


def take(state: str, user_id: int) -> PendingFlow | None:
    """The pending flow of `state` if it is this user's, removed from the store (single use, whatever happens next;
    committed). None for an unknown, replayed, expired or foreign state."""
    payload = PENDING.take(pending_key(user_id, state)) if state else None
    if payload is None:
        return None
    return PendingFlow(db.session.get(Datasource, payload["datasource_id"]), payload["intent"], payload["flow"])


def redeem(pending: PendingFlow, callback_args: dict[str, str]) -> Grant:
    """Redeem the callback's code (raises `AuthorizationFailed` with the reason in words)."""
    return finish_authorization(microsoft_settings(), pending.flow, callback_args)


def is_other_tenant(datasource: Datasource, grant: Grant) -> bool:
    """The tenant is fixed at the first authorization: a grant from another tenant is not Re-Authorize's to keep."""
    return bool(datasource.tenant_id) and grant.tenant_id != datasource.tenant_id


def keep_grant(datasource: Datasource, grant: Grant) -> ConnectionTest:
    """Store the grant if the connection test passes with it; otherwise put back what was there (committed).

    On success the datasource is changed but not committed: the caller commits it with its audit record.
    """
    previous = {name: getattr(datasource, name) for name in ("token_cache", "tenant_id", "granted_scopes", "status")}
    datasource.token_cache = secret_box().encrypt(grant.token_cache)
    datasource.tenant_id = grant.tenant_id
    datasource.granted_scopes = " ".join(grant.scopes)
    datasource.status = Datasource.READY
    test = run_connection_test(datasource, prove_grant=False)  # the code was redeemed a moment ago
    if not test.ok:
        for name, value in previous.items():  # the grant is not kept when it cannot be used
            setattr(datasource, name, value)
        db.session.commit()
        return test
    datasource.tenant_name = test.tenant_name
    datasource.authorized_by = grant.username
    datasource.authorized_by_oid = grant.user_oid
    datasource.authorized_at = datasource.last_refresh_ok_at = utcnow()
    datasource.last_error = datasource.last_error_at = None
    return test
