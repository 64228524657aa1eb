"""/subscriptions (docs/microsoft.md §10): create (with the validation handshake), list, get, renew or move
(PATCH), delete and reauthorize change-notification subscriptions on users and groups."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from flask import Response, current_app, g

from emulator import clock, notifications
from emulator.graph import bp, common
from emulator.graph.errors import GraphError, bad_request, forbidden

SUB_USER = frozenset({"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"})
SUB_GROUP = frozenset({"Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"})
CREATE_FIELDS = {"changeType", "notificationUrl", "lifecycleNotificationUrl", "resource", "expirationDateTime",
                 "clientState", "latestSupportedTlsVersion", "includeResourceData", "encryptionCertificate",
                 "encryptionCertificateId", "notificationQueryOptions", "notificationUrlAppId", "@odata.type"}
TLS_VERSIONS = ("v1_0", "v1_1", "v1_2", "v1_3")
# Directory subscription quotas (docs/microsoft.md §10.1): per app and tenant, and per tenant for all apps.
QUOTA_APP_TENANT = 100
QUOTA_TENANT = 1000


def _invalid(message: str) -> GraphError:
    return bad_request(message, code="InvalidRequest")


def _notifier() -> notifications.Notifier:
    return notifications.notifier(current_app)


def _app_id() -> str:
    return str(g.claims.get("appid") or g.claims.get("azp") or "")


def _require_for(resource: str) -> tuple[str, str | None]:
    target = notifications.parse_resource(resource)
    if target is None:
        raise _invalid(f"Resource '{resource}' is not supported for change notifications by this service.")
    scopes = SUB_USER if target[0] == "user" else SUB_GROUP
    if not common.granted() & scopes:
        raise forbidden()
    return target


def _expiration(value: Any) -> float:
    when = notifications.parse_time(value)
    if when is None:
        raise _invalid("expirationDateTime must be a valid DateTimeOffset, for example 2026-01-01T11:00:00.0000000Z.")
    now = clock.now()
    if when <= now:
        raise GraphError(400, "ExtensionError", "Subscription expiration must be in the future.")
    if when - now > notifications.MAX_MINUTES * 60:
        raise GraphError(400, "ExtensionError",
                         f"Subscription expiration can only be {notifications.MAX_MINUTES} minutes in the future.")
    return when


def _check_url(name: str, url: Any) -> str:
    problem = notifications.url_problem(url)
    if problem:
        raise _invalid(f"{name} {problem}.")
    return url


def _validate(url: str) -> None:
    """The handshake, on this (the creating request's) thread: Graph answers only once it has succeeded."""
    note = _notifier()
    problem = notifications.validate_endpoint(url, note.settings["verify"])
    note.record_validation(url, problem)
    if problem:
        raise _invalid(problem)


def _check_quota() -> None:
    live = common.db().execute("SELECT count(*), coalesce(sum(application_id = ?), 0) FROM subscriptions "
                               "WHERE tenant_id = ? AND expiration > ?",
                               (_app_id(), common.tenant(), clock.now())).fetchone()
    if live[1] >= QUOTA_APP_TENANT or live[0] >= QUOTA_TENANT:
        limit = (f"{QUOTA_APP_TENANT} per app and tenant" if live[1] >= QUOTA_APP_TENANT
                 else f"{QUOTA_TENANT} per tenant")
        raise GraphError(403, "ExtensionError", f"Subscription quota exceeded: at most {limit} for this resource.")


def _own(sub_id: str) -> sqlite3.Row:
    """The caller app's live subscription (404 otherwise, as for one Graph already removed)."""
    row = common.db().execute("SELECT * FROM subscriptions WHERE id = ? AND tenant_id = ?",
                              (sub_id, common.tenant())).fetchone()
    if row is None or row["application_id"] != _app_id() or row["expiration"] <= clock.now():
        raise GraphError(404, "ResourceNotFound", f"The object '{sub_id}' doesn't exist.")
    _require_for(row["resource"])
    return row


def _entity(row: sqlite3.Row, status: int = 200) -> Response:
    body = {"@odata.context": common.context_url("subscriptions/$entity"), **notifications.subscription_json(row)}
    return common.odata_json(body, status=status)


@bp.post("/subscriptions")
def create_subscription() -> Response:
    body = common.json_body()
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise bad_request(f"Property '{unknown[0]}' does not exist as a declared property or extension property.",
                          code="BadRequest")
    for name in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
        if not body.get(name):
            raise _invalid(f"{name} is a required property for subscription creation.")
    target = _require_for(body["resource"])
    kinds = notifications.change_types(body["changeType"])
    if kinds is None:
        raise _invalid(f"Invalid changeType '{body['changeType']}': use created, updated, deleted, comma-separated.")
    if body.get("includeResourceData"):
        raise _invalid("Rich notifications (includeResourceData) are not supported on this resource.")
    state = body.get("clientState")
    if state is not None and (not isinstance(state, str) or len(state) > 128):
        raise _invalid("clientState must be a string of at most 128 characters.")
    tls = body.get("latestSupportedTlsVersion") or "v1_2"
    if tls not in TLS_VERSIONS:
        raise _invalid(f"latestSupportedTlsVersion must be one of {', '.join(TLS_VERSIONS)}.")
    url = _check_url("notificationUrl", body["notificationUrl"])
    lifecycle = body.get("lifecycleNotificationUrl")
    if lifecycle is not None:
        _check_url("lifecycleNotificationUrl", lifecycle)
    expiration = _expiration(body["expirationDateTime"])
    if target[1] is not None:
        kind = "users" if target[0] == "user" else "groups"
        found = common.db().execute(f"SELECT 1 FROM {kind} WHERE id = ? AND tenant_id = ?",  # noqa: S608
                                    (target[1], common.tenant())).fetchone()
        if found is None:
            raise GraphError(404, "ResourceNotFound", f"Resource '{body['resource']}' does not exist.")
    _check_quota()
    _validate(url)
    if lifecycle:
        _validate(lifecycle)
    sub_id = str(uuid.uuid4())
    creator = g.caller_oid or _app_id()
    with common.store().transaction() as conn:
        conn.execute("INSERT INTO subscriptions (id, tenant_id, resource, change_type, notification_url, "
                     "lifecycle_url, client_state, expiration, application_id, creator_id, tls_version, created, "
                     "since_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (sub_id, common.tenant(), body["resource"], ",".join(kinds), url, lifecycle, state,
                      expiration, _app_id(), creator, tls, clock.now(), notifications.high_water(conn)))
    _notifier().ensure_started()
    return _entity(common.db().execute("SELECT * FROM subscriptions WHERE id = ?", (sub_id,)).fetchone(), 201)


@bp.get("/subscriptions")
def list_subscriptions() -> Response:
    rows = common.db().execute("SELECT * FROM subscriptions WHERE tenant_id = ? AND application_id = ? "
                               "AND expiration > ? ORDER BY created", (common.tenant(), _app_id(), clock.now()))
    items = []
    for row in rows:
        target = notifications.parse_resource(row["resource"])
        scopes = SUB_USER if target and target[0] == "user" else SUB_GROUP
        if common.granted() & scopes:
            items.append(notifications.subscription_json(row))
    return common.collection(common.context_url("subscriptions"), items)


@bp.get("/subscriptions/<sub_id>")
def get_subscription(sub_id: str) -> Response:
    return _entity(_own(sub_id))


@bp.patch("/subscriptions/<sub_id>")
def update_subscription(sub_id: str) -> Response:
    """Renew (expirationDateTime) and/or move (notificationUrl, validated again); renewing also reauthorizes."""
    row = _own(sub_id)
    body = common.json_body()
    allowed = {"expirationDateTime", "notificationUrl", "@odata.type"}
    if "lifecycleNotificationUrl" in body:
        raise _invalid("lifecycleNotificationUrl cannot be added or changed by updating a subscription: "
                       "delete it and create a new one.")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _invalid(f"Property '{unknown[0]}' cannot be updated on a subscription.")
    if not body.get("expirationDateTime") and not body.get("notificationUrl"):
        raise _invalid("Give expirationDateTime and/or notificationUrl.")
    expiration = _expiration(body["expirationDateTime"]) if body.get("expirationDateTime") else row["expiration"]
    url = row["notification_url"]
    if body.get("notificationUrl"):
        url = _check_url("notificationUrl", body["notificationUrl"])
        _validate(url)
    with common.store().transaction() as conn:
        conn.execute("UPDATE subscriptions SET expiration = ?, notification_url = ?, reauth_required = 0, "
                     "paused = 0 WHERE id = ?", (expiration, url, row["id"]))
    return _entity(common.db().execute("SELECT * FROM subscriptions WHERE id = ?", (row["id"],)).fetchone())


@bp.delete("/subscriptions/<sub_id>")
def delete_subscription(sub_id: str) -> Response:
    row = _own(sub_id)
    with common.store().transaction() as conn:
        conn.execute("DELETE FROM subscriptions WHERE id = ?", (row["id"],))
    return common.no_content()


@bp.post("/subscriptions/<sub_id>/reauthorize")
def reauthorize_subscription(sub_id: str) -> Response:
    """Answer a reauthorizationRequired challenge without renewing: delivery resumes."""
    row = _own(sub_id)
    with common.store().transaction() as conn:
        conn.execute("UPDATE subscriptions SET reauth_required = 0, paused = 0 WHERE id = ?", (row["id"],))
    return common.no_content()
