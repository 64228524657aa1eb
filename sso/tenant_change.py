"""What single sign-on does when an Administrator changes a datasource's tenant (registered with
datasources.tenant_change by the factory)."""

from __future__ import annotations

from sqlalchemy import select

from core import audit
from core.extensions import db
from core.models import Datasource
from datasources.tenant_change import TenantChangeEffect
from sso.models import SsoProvider
from sso.sessions import end_provider_sessions_on_commit


def hold_sign_in(datasource: Datasource, old_tenant_id: str | None) -> TenantChangeEffect:
    """Turn sign-in through the datasource's providers off until an Administrator confirms the new tenant, and end
    the sessions signed in through them once the change is committed. Those sessions all come from the old tenant:
    a datasource's provider accepts only ID tokens of the datasource's tenant."""
    providers = list(db.session.scalars(select(SsoProvider).where(SsoProvider.datasource_id == datasource.id)
                                        .order_by(SsoProvider.name)))
    names = [provider.name for provider in providers]
    if not names:
        return TenantChangeEffect({"sso_providers_disabled": []})
    for provider in providers:
        provider.enabled = False
        audit.record("sso.sessions_end", provider.name, reason="tenant changed", datasource_id=datasource.id,
                     from_tenant_id=old_tenant_id, tenant_id=datasource.tenant_id)
    end_provider_sessions_on_commit(names)
    return TenantChangeEffect({"sso_providers_disabled": names, "sso_sessions_ended": names},
                              "Single sign-on through this data source is off until an Administrator confirms the "
                              "new tenant: Confirm tenant for single sign-on. People signed in through it from the "
                              "previous tenant were signed out.")
