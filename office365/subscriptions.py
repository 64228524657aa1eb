"""Microsoft Graph change-notification subscriptions (docs/microsoft.md §10): create, renew, move, reauthorize,
delete and list, for the `users` and `groups` resources. No Flask, no database: the caller stores what it needs.

Creating (or moving) a subscription makes Graph call the notification URL's validation handshake before it
answers, so these calls get a read timeout longer than Graph's 10-second handshake limit (the caller's client).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from office365.errors import GraphError, InvalidRequest
from office365.graph import GraphClient
from office365.odata import graph_time, parse_graph_time

# Longest lifetime Graph accepts for user, group and other directory resources (docs/microsoft.md §10.1).
MAX_LIFETIME = timedelta(minutes=41760)
CHANGE_TYPE = "updated,deleted"  # users and groups: a create or soft delete is `updated`, `created` never fires
RESOURCES = ("users", "groups")


@dataclass(frozen=True)
class Subscription:
    """What Graph answered about one subscription."""

    id: str
    resource: str
    change_type: str
    expires_at: datetime
    notification_url: str
    lifecycle_url: str | None


def _subscription(body: Any) -> Subscription:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise GraphError("Microsoft Graph answered without a subscription id. Try again in a few minutes.")
    expires = parse_graph_time(body.get("expirationDateTime"))
    if expires is None:
        raise GraphError("Microsoft Graph answered a subscription without a valid expirationDateTime.")
    return Subscription(id=body["id"], resource=str(body.get("resource") or ""),
                        change_type=str(body.get("changeType") or ""), expires_at=expires,
                        notification_url=str(body.get("notificationUrl") or ""),
                        lifecycle_url=body.get("lifecycleNotificationUrl"))


def create(client: GraphClient, *, resource: str, notification_url: str, lifecycle_url: str, client_state: str,
           expires_at: datetime, change_type: str = CHANGE_TYPE) -> Subscription:
    """POST /subscriptions. Graph validates both URLs (the handshake) before it answers 201.

    A create is not retried when its fate is unknown (a dropped connection): the subscription may exist; the
    caller finds it with `list_all` by its notification URL."""
    if resource not in RESOURCES:
        raise InvalidRequest(f"Change notifications are only set up for {', '.join(RESOURCES)}, not {resource!r}.")
    if len(client_state) > 128:
        raise InvalidRequest("clientState must be at most 128 characters.")
    body = {"changeType": change_type, "notificationUrl": notification_url,
            "lifecycleNotificationUrl": lifecycle_url, "resource": resource,
            "expirationDateTime": graph_time(expires_at), "clientState": client_state,
            "latestSupportedTlsVersion": "v1_2"}
    return _subscription(client.request("POST", "/subscriptions", json_body=body, idempotent=False).body)


def renew(client: GraphClient, subscription_id: str, expires_at: datetime,
          notification_url: str | None = None) -> Subscription:
    """PATCH /subscriptions/{id}: a new expirationDateTime (also answers a pending reauthorization), and/or a
    new notificationUrl (validated again by Graph)."""
    body: dict[str, str] = {"expirationDateTime": graph_time(expires_at)}
    if notification_url:
        body["notificationUrl"] = notification_url
    return _subscription(client.request("PATCH", f"/subscriptions/{_id(subscription_id)}", json_body=body,
                                        idempotent=True).body)


def reauthorize(client: GraphClient, subscription_id: str) -> None:
    """POST /subscriptions/{id}/reauthorize: answers reauthorizationRequired without renewing (204)."""
    client.request("POST", f"/subscriptions/{_id(subscription_id)}/reauthorize", idempotent=True)


def delete(client: GraphClient, subscription_id: str) -> None:
    """DELETE /subscriptions/{id} (204). One Graph no longer knows raises `NotFound`."""
    client.request("DELETE", f"/subscriptions/{_id(subscription_id)}", idempotent=True)


def list_all(client: GraphClient) -> list[Subscription]:
    """The calling app's live subscriptions in this tenant (GET /subscriptions, every page)."""
    return [_subscription(item) for item in client.iter_items("/subscriptions")]


def _id(subscription_id: str) -> str:
    """A subscription id as a path segment: Graph's are GUIDs; anything else is refused before sending."""
    if not subscription_id or not all(c.isalnum() or c == "-" for c in subscription_id) \
            or len(subscription_id) > 64:
        raise InvalidRequest(f"{subscription_id!r} is not a subscription id.")
    return subscription_id
