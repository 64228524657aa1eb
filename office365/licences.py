"""Licence Plan List, Assign Licence to User, Remove Licence from User; friendly SKU names."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from office365.errors import (
    INVALID_USAGE_LOCATION_MESSAGE,
    NO_LICENCES_FRAGMENT,
    FieldError,
    InvalidRequest,
    NoSeatsLeft,
    NotFound,
    Office365Error,
    UsageLocationRequired,
    WriteNotAllowed,
)
from office365.registry import GraphAccess, checked_object_id, operation, short_scope, user_path_key
from office365.scopes import LICENCE_WRITE_SCOPES, SKU_READ_SCOPES, USER_WRITE_SCOPES

FRIENDLY_NAMES: dict[str, str] = {
    "STANDARDPACK": "Office 365 E1",
    "ENTERPRISEPACK": "Office 365 E3",
    "ENTERPRISEPREMIUM": "Office 365 E5",
    "DESKLESSPACK": "Office 365 F3",
    "SPE_E3": "Microsoft 365 E3",
    "SPE_E5": "Microsoft 365 E5",
    "SPE_F1": "Microsoft 365 F3",
    "SPB": "Microsoft 365 Business Premium",
    "O365_BUSINESS_PREMIUM": "Microsoft 365 Business Standard",
    "O365_BUSINESS_ESSENTIALS": "Microsoft 365 Business Basic",
    "DEVELOPERPACK_E5": "Microsoft 365 E5 Developer",
    "EXCHANGESTANDARD": "Exchange Online (Plan 1)",
    "EXCHANGEENTERPRISE": "Exchange Online (Plan 2)",
    "EMS": "Enterprise Mobility + Security E3",
    "EMSPREMIUM": "Enterprise Mobility + Security E5",
    "AAD_PREMIUM": "Microsoft Entra ID P1",
    "AAD_PREMIUM_P2": "Microsoft Entra ID P2",
    "POWER_BI_STANDARD": "Power BI (free)",
    "POWER_BI_PRO": "Power BI Pro",
    "FLOW_FREE": "Power Automate Free",
    "TEAMS_EXPLORATORY": "Microsoft Teams Exploratory",
    "VISIOCLIENT": "Visio Plan 2",
    "PROJECTPREMIUM": "Project Plan 5",
    "WIN10_VDA_E3": "Windows Enterprise E3",
}


def friendly_name(sku_part_number: str) -> str:
    """A readable product name; unknown SKUs fall back to their part number, underscores as spaces."""
    return FRIENDLY_NAMES.get(sku_part_number.upper(), sku_part_number.replace("_", " "))


# -- licences ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePlan:
    id: str
    name: str
    provisioning_status: str | None
    applies_to: str | None


@dataclass(frozen=True)
class LicencePlan:
    sku_id: str
    sku_part_number: str
    friendly_name: str
    consumed_units: int
    purchased_units: int  # prepaidUnits.enabled
    capability_status: str
    service_plans: tuple[ServicePlan, ...]

    @property
    def available_units(self) -> int:
        return max(0, self.purchased_units - self.consumed_units)

    @classmethod
    def from_graph(cls, d: dict[str, Any]) -> LicencePlan:
        part = d.get("skuPartNumber") or d.get("skuId", "")
        return cls(
            sku_id=d["skuId"],
            sku_part_number=part,
            friendly_name=friendly_name(part),
            consumed_units=int(d.get("consumedUnits") or 0),
            purchased_units=int((d.get("prepaidUnits") or {}).get("enabled") or 0),
            capability_status=d.get("capabilityStatus") or "Enabled",
            service_plans=tuple(
                ServicePlan(p["servicePlanId"], p.get("servicePlanName", ""), p.get("provisioningStatus"),
                            p.get("appliesTo"))
                for p in d.get("servicePlans") or []
            ),
        )


@dataclass(frozen=True)
class LicencePlans:
    plans: list[LicencePlan]
    request_id: str | None


@operation("list_licence_plans", "Licence Plan List", "read", SKU_READ_SCOPES)
def list_licence_plans(access: GraphAccess) -> LicencePlans:
    resp = access.client.get("/subscribedSkus")
    items = resp.body.get("value", []) if isinstance(resp.body, dict) else []
    return LicencePlans([LicencePlan.from_graph(s) for s in items], resp.request_id)


def find_plan(access: GraphAccess, sku_id: str) -> LicencePlan:
    for plan in list_licence_plans(access).plans:
        if plan.sku_id.lower() == sku_id.lower():
            return plan
    raise NotFound(
        f"The licence plan {sku_id} is not subscribed in this tenant. Pick a plan from the Licence Plan List.",
        status=404, request_id=access.client.last_request_id,
    )


@dataclass(frozen=True)
class LicenceChange:
    user_id: str
    sku_id: str
    outcome: Literal["assigned", "updated", "removed"]
    message: str
    request_id: str | None
    usage_location_set: str | None = None


_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _get_user(access: GraphAccess, user_key: str, select: str) -> dict[str, Any]:
    try:
        return access.client.get(f"/users/{user_key}", params={"$select": select}).body
    except NotFound as exc:
        raise NotFound(
            f"The user {user_key} does not exist in the tenant. Check the id; it may have been deleted.",
            status=404, code=exc.code, graph_message=exc.graph_message, request_id=exc.request_id,
        ) from exc


def licence_error(exc: InvalidRequest, sku_id: str) -> Office365Error:
    message = exc.graph_message or ""
    if message == INVALID_USAGE_LOCATION_MESSAGE:
        return UsageLocationRequired(
            "Graph refused the licence because the user has no valid usage location. Set the user's usage "
            "location (a two-letter country code) and try again.", request_id=exc.request_id,
        )
    if NO_LICENCES_FRAGMENT in message:
        return NoSeatsLeft(
            f"No seats are left for licence plan {sku_id}. Buy more licences or remove the plan from someone "
            "who does not need it, then try again.", request_id=exc.request_id,
        )
    return exc


@dataclass(frozen=True)
class UserLicence:
    sku_id: str
    sku_part_number: str
    friendly_name: str
    service_plans: tuple[ServicePlan, ...]


def user_licences(access: GraphAccess, user_id: str) -> list[UserLicence]:
    """A user's licences (direct and group-assigned), for the user page: `GET /users/{id}/licenseDetails`."""
    key = user_path_key(user_id)
    try:
        items = access.client.iter_items(f"/users/{key}/licenseDetails")
        return [
            UserLicence(
                d["skuId"], d.get("skuPartNumber", ""), friendly_name(d.get("skuPartNumber", "")),
                tuple(ServicePlan(p["servicePlanId"], p.get("servicePlanName", ""), p.get("provisioningStatus"),
                                  p.get("appliesTo")) for p in d.get("servicePlans") or []),
            )
            for d in items
        ]
    except NotFound as exc:
        raise NotFound(
            f"The user {user_id} does not exist in the tenant. Check the id; it may have been deleted.",
            status=404, code=exc.code, graph_message=exc.graph_message, request_id=exc.request_id,
        ) from exc


@operation("assign_licence", "Assign Licence to User", "write", LICENCE_WRITE_SCOPES)
def assign_licence(
    access: GraphAccess,
    user_id: str,
    sku_id: str,
    *,
    disabled_plans: Sequence[str] = (),
    set_usage_location: str | None = None,
) -> LicenceChange:
    """Assign (or update the disabled plans of) a licence, after checking usage location and free seats.

    `set_usage_location` (ISO 3166 alpha-2, e.g. "FR"): set it first when the user has none.
    """
    key = user_path_key(user_id)
    sku = checked_object_id(sku_id, "sku_id")
    disabled = [checked_object_id(p, "disabled_plan") for p in dict.fromkeys(disabled_plans)]
    if set_usage_location is not None:
        set_usage_location = set_usage_location.strip().upper()
        if not _COUNTRY.match(set_usage_location):
            raise FieldError("usage_location", "The usage location must be a two-letter country code, e.g. FR.")
        granted = {short_scope(s) for s in access.granted_scopes}
        if not granted & {s.lower() for s in USER_WRITE_SCOPES}:
            raise WriteNotAllowed(
                "Setting a user's usage location needs the Graph permission User.ReadWrite.All, which the "
                "datasource's grant lacks; nothing was sent. Set the usage location in the Microsoft 365 admin "
                "center, or add User.ReadWrite.All to the data source's permissions and Re-Authorize it."
            )
    user = _get_user(access, key, "id,userPrincipalName,usageLocation,assignedLicenses")
    plan = find_plan(access, sku)
    unknown = set(disabled) - {p.id.lower() for p in plan.service_plans}
    if unknown:
        raise FieldError(
            "disabled_plans",
            f"{', '.join(sorted(unknown))} are not service plans of {plan.friendly_name}. Pick plans from the list.",
        )
    has_it = any(a.get("skuId", "").lower() == sku for a in user.get("assignedLicenses") or [])
    if not has_it and plan.available_units <= 0:
        raise NoSeatsLeft(
            f"No seats are left for {plan.friendly_name} ({plan.consumed_units} of {plan.purchased_units} used). "
            "Buy more licences or remove the plan from someone who does not need it, then try again.",
            request_id=access.client.last_request_id,
        )
    location_set = None
    if not user.get("usageLocation"):
        if not set_usage_location:
            raise UsageLocationRequired(
                f"The user {user.get('userPrincipalName') or user_id} has no usage location, which Microsoft "
                "requires before a licence can be assigned. Set one (a two-letter country code) and try again.",
                request_id=access.client.last_request_id,
            )
        access.client.request(
            "PATCH", f"/users/{user['id']}", json_body={"usageLocation": set_usage_location}, idempotent=True
        )
        location_set = set_usage_location
    body = {"addLicenses": [{"skuId": sku, "disabledPlans": disabled}], "removeLicenses": []}
    for attempt in range(3):
        try:
            resp = access.client.request(
                "POST", f"/users/{user['id']}/assignLicense", json_body=body, idempotent=True
            )
            break
        except InvalidRequest as exc:
            error = licence_error(exc, sku)
            # A usage location just set can take a moment to replicate: retry briefly (docs/microsoft.md §8.12).
            if location_set and isinstance(error, UsageLocationRequired) and attempt < 2:
                access.client.sleep(access.client.retry.backoff(attempt + 1))
                continue
            raise error from exc
    outcome: Literal["assigned", "updated"] = "updated" if has_it else "assigned"
    return LicenceChange(
        user["id"], sku, outcome,
        f"{plan.friendly_name} was {'updated for' if has_it else 'assigned to'} the user.",
        resp.request_id, location_set,
    )


@operation("remove_licence", "Remove Licence from User", "write", LICENCE_WRITE_SCOPES)
def remove_licence(access: GraphAccess, user_id: str, sku_id: str) -> LicenceChange:
    """Remove a directly assigned licence; refuses (without sending) when the user does not hold it."""
    key = user_path_key(user_id)
    sku = checked_object_id(sku_id, "sku_id")
    user = _get_user(access, key, "id,userPrincipalName,assignedLicenses")
    if not any(a.get("skuId", "").lower() == sku for a in user.get("assignedLicenses") or []):
        raise InvalidRequest(
            f"The user {user.get('userPrincipalName') or user_id} does not hold licence plan {sku}; nothing was "
            "changed. Refresh the user's licences.",
            status=400, request_id=access.client.last_request_id,
        )
    body = {"addLicenses": [], "removeLicenses": [sku]}
    try:
        resp = access.client.request("POST", f"/users/{user['id']}/assignLicense", json_body=body)
    except InvalidRequest as exc:
        raise licence_error(exc, sku) from exc
    return LicenceChange(user["id"], sku, "removed", "The licence was removed from the user.", resp.request_id)
