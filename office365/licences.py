"""Friendly product names for licence SKUs (Graph only returns `skuPartNumber`)."""

from __future__ import annotations

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
