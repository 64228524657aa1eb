"""/organization and /subscribedSkus (docs/microsoft.md §5.7)."""

from __future__ import annotations

import json
import uuid

from flask import Response, request

from emulator.graph import bp, common, odata

_SKU_PROPS = ("accountName", "accountId", "appliesTo", "capabilityStatus", "consumedUnits", "id", "prepaidUnits",
              "servicePlans", "skuId", "skuPartNumber", "subscriptionIds")
_SKU_SCHEMA = odata.Schema("SubscribedSku", "microsoft.graph.subscribedSku", {}, select_props=_SKU_PROPS)


def _tenant_row():  # noqa: ANN202 - sqlite3.Row
    return common.db().execute("SELECT * FROM tenants WHERE id = ?", (common.tenant(),)).fetchone()


@bp.get("/organization")
def organization() -> Response:
    common.require(common.ORG_READ | common.SELF_READ | common.USER_READ)
    row = _tenant_row()
    created = row["created"]
    org = {
        "id": row["id"], "deletedDateTime": None, "businessPhones": [], "city": None, "country": None,
        "countryLetterCode": "US", "createdDateTime": created, "displayName": row["display_name"],
        "marketingNotificationEmails": [], "onPremisesLastSyncDateTime": None, "onPremisesSyncEnabled": None,
        "postalCode": None, "preferredLanguage": "en", "securityComplianceNotificationMails": [],
        "securityComplianceNotificationPhones": [], "state": None, "street": None,
        "technicalNotificationMails": [], "tenantType": "AAD",
        "assignedPlans": [], "provisionedPlans": [],
        "verifiedDomains": [{"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": True,
                             "isInitial": True, "name": row["domain"], "type": "Managed"}],
    }
    return common.collection(common.context_url("organization"), [org])


@bp.get("/subscribedSkus")
def subscribed_skus() -> Response:
    common.require(common.ORG_READ)
    if "$filter" in request.args:
        raise odata.unsupported_query("$filter is not supported on subscribedSkus.")
    select = odata.parse_select(request.args.get("$select"), _SKU_SCHEMA)
    conn = common.db()
    tenant_id = common.tenant()
    org = _tenant_row()
    items = []
    for row in conn.execute(
            "SELECT s.*, (SELECT count(*) FROM user_licenses ul JOIN users u ON u.id = ul.user_id "
            "             WHERE lower(ul.sku_id) = lower(s.sku_id) AND u.tenant_id = s.tenant_id) AS consumed "
            "FROM skus s WHERE s.tenant_id = ? ORDER BY s.rowid", (tenant_id,)):
        sku = {
            "accountName": org["display_name"], "accountId": tenant_id, "appliesTo": "User",
            "capabilityStatus": row["capability_status"], "consumedUnits": row["consumed"],
            "id": f"{tenant_id}_{row['sku_id']}",
            "prepaidUnits": {"enabled": row["prepaid_enabled"], "lockedOut": 0, "suspended": 0, "warning": 0},
            "servicePlans": [dict(p, appliesTo=p.get("appliesTo", "User")) for p in json.loads(row["service_plans"])],
            "skuId": row["sku_id"], "skuPartNumber": row["sku_part_number"],
            "subscriptionIds": [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{row['sku_id']}"))],
        }
        items.append(common.project(sku, select, _SKU_PROPS))
    return common.collection(common.context_url("subscribedSkus" + common.select_suffix(select)), items)
