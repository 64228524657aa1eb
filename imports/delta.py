"""The Graph side of the import: what it asks for, how a delta page and its users read, groups by name or id."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from office365.errors import GraphError
from office365.graph import GraphClient
from office365.odata import parse_graph_time, string_literal

# signInSessionsValidFromDateTime: when the user's sign-in sessions were last revoked (live access ends older ones)
USER_SELECT = "id,displayName,mail,userPrincipalName,accountEnabled,signInSessionsValidFromDateTime"
GROUP_SELECT = "id,displayName,members"
RESYNC_CODES = {"syncStateNotFound", "resyncRequired", "SyncStateNotFound"}


def is_resync(exc: GraphError) -> bool:
    return exc.status == 410 or (exc.code or "") in RESYNC_CODES


def resolve_groups(client: GraphClient, names: Iterable[str]) -> tuple[list[dict[str, str]], list[str]]:
    """Office 365 groups by id or display name: ([{"id", "name"}], [names not found])."""
    found, missing = [], []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        params = {"$select": "id,displayName", "$top": "2"}
        params["$filter"] = f"id eq {string_literal(name)}" if _looks_like_id(name) else \
            f"displayName eq {string_literal(name)}"
        items = client.get_page("/groups", params=params).items
        if items:
            found.append({"id": items[0]["id"], "name": items[0].get("displayName") or name})
        else:
            missing.append(name)
    return found, missing


def _looks_like_id(text: str) -> bool:
    parts = text.split("-")
    return len(parts) == 5 and all(c in "0123456789abcdefABCDEF-" for c in text)


def page_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A delta page's items, once each (the last version of any repeated in the page)."""
    return list({item["id"]: item for item in body.get("value") or [] if "id" in item}.values())


def sessions_valid_from(item: dict[str, Any]) -> datetime | None:
    """A delta item's signInSessionsValidFromDateTime, or None."""
    return parse_graph_time(item.get("signInSessionsValidFromDateTime"))


def email_of(item: dict[str, Any]) -> str:
    return str(item.get("mail") or item.get("userPrincipalName") or "").strip().lower()
