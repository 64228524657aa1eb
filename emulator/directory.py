"""Directory writes shared by the Graph routes and the control API, plus the Graph JSON of stored objects.

Every function takes an open connection inside a transaction and Graph-shaped camelCase properties, returns
the Graph JSON of the object, and appends to `changes` (what `/users/delta` and `/groups/delta` replay).
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from emulator import clock


class DirectoryError(Exception):
    """A Graph-shaped failure (status, code, message) of a directory write."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------- messages

def not_found(ref: str) -> DirectoryError:
    return DirectoryError(404, "Request_ResourceNotFound",
                          f"Resource '{ref}' does not exist or one of its queried reference-property objects "
                          "are not present.")


def invalid_value(prop: str, resource: str) -> DirectoryError:
    return DirectoryError(400, "Request_BadRequest",
                          f"Invalid value specified for property '{prop}' of resource '{resource}'.")


MEMBER_EXISTS = "One or more added object references already exist for the following modified properties: '{}'."
NICKNAME_TAKEN = "Another object with the same value for property mailNickname already exists."
UPN_TAKEN = "Another object with the same value for property userPrincipalName already exists."
MAX_BINDS = 20

# ---------------------------------------------------------------------------------------------- JSON shapes

USER_COLUMNS = {
    "id": "id", "userPrincipalName": "user_principal_name", "displayName": "display_name",
    "givenName": "given_name", "surname": "surname", "mail": "mail", "jobTitle": "job_title",
    "department": "department", "usageLocation": "usage_location", "accountEnabled": "account_enabled",
}
GROUP_COLUMNS = {
    "id": "id", "displayName": "display_name", "description": "description", "mail": "mail",
    "mailNickname": "mail_nickname", "mailEnabled": "mail_enabled", "securityEnabled": "security_enabled",
    "groupTypes": "group_types", "visibility": "visibility",
}
USER_READ_ONLY = {"id", "createdDateTime", "assignedLicenses", "assignedPlans", "licenseAssignmentStates"}
USER_WRITABLE = {"displayName", "givenName", "surname", "mail", "userPrincipalName", "jobTitle", "department",
                 "mobilePhone", "officeLocation", "businessPhones", "preferredLanguage", "accountEnabled",
                 "usageLocation", "mailNickname", "otherMails", "employeeId", "companyName", "city", "country",
                 "state", "streetAddress", "postalCode", "userType", "passwordProfile", "employeeType",
                 "faxNumber", "ageGroup", "passwordPolicies", "showInAddressList", "onPremisesImmutableId",
                 "proxyAddresses", "imAddresses", "identities"}
GROUP_WRITABLE = {"displayName", "description", "mailNickname", "visibility", "mailEnabled", "securityEnabled",
                  "groupTypes", "classification", "preferredLanguage", "theme", "membershipRule",
                  "membershipRuleProcessingState", "isAssignableToRole", "resourceBehaviorOptions",
                  "resourceProvisioningOptions", "preferredDataLocation", "members@odata.bind",
                  "owners@odata.bind"}


def iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(clock.now() if ts is None else ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _normalise_time(value: str | None) -> str | None:
    if value and value.endswith("+00:00"):
        return value[:-6] + "Z"
    return value


def licences_for(conn: sqlite3.Connection, user_ids: list[str]) -> dict[str, list[dict]]:
    """`assignedLicenses` of many users in one query."""
    out: dict[str, list[dict]] = {uid: [] for uid in user_ids}
    for start in range(0, len(user_ids), 900):
        chunk = user_ids[start:start + 900]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(f"SELECT user_id, sku_id, disabled_plans FROM user_licenses "  # noqa: S608
                                f"WHERE user_id IN ({marks}) ORDER BY rowid", chunk):
            out[row[0]].append({"disabledPlans": json.loads(row[2]), "skuId": row[1]})
    return out


def user_to_graph(row: sqlite3.Row, licences: list[dict] | None = None) -> dict[str, Any]:
    """All Graph properties of a stored user (callers project to `$select` or the default set)."""
    extra = json.loads(row["extra"] or "{}")
    out: dict[str, Any] = {
        "id": row["id"], "businessPhones": [], "displayName": row["display_name"],
        "givenName": row["given_name"], "jobTitle": row["job_title"], "mail": row["mail"],
        "mobilePhone": None, "officeLocation": None, "preferredLanguage": None, "surname": row["surname"],
        "userPrincipalName": row["user_principal_name"], "accountEnabled": bool(row["account_enabled"]),
        "usageLocation": row["usage_location"], "department": row["department"],
        "createdDateTime": _normalise_time(row["created"]), "deletedDateTime": None,
        "mailNickname": row["user_principal_name"].split("@")[0], "otherMails": [], "proxyAddresses": [],
        "userType": "Member", "imAddresses": [], "identities": [],
    }
    for key, value in extra.items():
        if key != "passwordProfile":
            out[key] = value
    out.setdefault("signInSessionsValidFromDateTime", out["createdDateTime"])
    lic = licences if licences is not None else []
    out["assignedLicenses"] = lic
    out["assignedPlans"] = []
    return out


_USER_ROW_PROPS = {"id": "id", "displayName": "display_name", "givenName": "given_name", "jobTitle": "job_title",
                   "mail": "mail", "surname": "surname", "userPrincipalName": "user_principal_name",
                   "usageLocation": "usage_location", "department": "department"}
_USER_EXTRA_DEFAULTS: dict[str, Any] = {"businessPhones": [], "mobilePhone": None, "officeLocation": None,
                                        "preferredLanguage": None, "deletedDateTime": None, "otherMails": [],
                                        "proxyAddresses": [], "userType": "Member", "imAddresses": [],
                                        "identities": [], "assignedPlans": []}


@lru_cache(maxsize=4096)
def _parsed_extra(text: str) -> dict[str, Any]:
    """Parsed `extra` JSON, shared between users with identical text (read-only: never mutate the result)."""
    return json.loads(text or "{}")


def user_projection(row: sqlite3.Row, keys: Iterable[str], licences: list[dict] | None = None) -> dict[str, Any]:
    """Just `keys` of a stored user, equal to projecting `user_to_graph(row, licences)` but much cheaper (the
    hot path of 999-user pages)."""
    extra = _parsed_extra(row["extra"])
    out: dict[str, Any] = {}
    for key in keys:
        column = _USER_ROW_PROPS.get(key)
        if column is not None and key not in extra:
            out[key] = row[column]
        elif key == "accountEnabled":
            out[key] = bool(row["account_enabled"])
        elif key == "createdDateTime":
            out[key] = _normalise_time(row["created"])
        elif key == "assignedLicenses":
            out[key] = licences if licences is not None else []
        elif key == "mailNickname" and key not in extra:
            out[key] = row["user_principal_name"].split("@")[0]
        elif key == "passwordProfile":
            out[key] = None
        elif key == "signInSessionsValidFromDateTime":
            out[key] = extra.get(key) or _normalise_time(row["created"])
        else:
            out[key] = extra.get(key, _USER_EXTRA_DEFAULTS.get(key))
    return out


def _security_identifier(object_id: str) -> str:
    raw = uuid.UUID(object_id).bytes_le
    parts = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, 16, 4)]
    return "S-1-12-1-" + "-".join(str(p) for p in parts)


def group_to_graph(row: sqlite3.Row) -> dict[str, Any]:
    """All Graph properties of a stored group (default set per docs/microsoft.md §5.2)."""
    extra = json.loads(row["extra"] or "{}")
    created = _normalise_time(row["created"])
    try:
        sid = _security_identifier(row["id"])
    except ValueError:
        sid = None
    mail = row["mail"]
    out: dict[str, Any] = {
        "id": row["id"], "deletedDateTime": None, "classification": None, "createdDateTime": created,
        "creationOptions": [], "description": row["description"], "displayName": row["display_name"],
        "expirationDateTime": None, "groupTypes": json.loads(row["group_types"]), "isAssignableToRole": None,
        "mail": mail, "mailEnabled": bool(row["mail_enabled"]), "mailNickname": row["mail_nickname"],
        "membershipRule": None, "membershipRuleProcessingState": None, "onPremisesDomainName": None,
        "onPremisesLastSyncDateTime": None, "onPremisesNetBiosName": None, "onPremisesSamAccountName": None,
        "onPremisesSecurityIdentifier": None, "onPremisesSyncEnabled": None, "preferredDataLocation": None,
        "preferredLanguage": None, "proxyAddresses": [f"SMTP:{mail}"] if mail else [],
        "renewedDateTime": created, "resourceBehaviorOptions": [], "resourceProvisioningOptions": [],
        "securityEnabled": bool(row["security_enabled"]), "securityIdentifier": sid, "theme": None,
        "visibility": row["visibility"], "onPremisesProvisioningErrors": [], "serviceProvisioningErrors": [],
    }
    out.update(extra)
    return out


# ---------------------------------------------------------------------------------------------- look-ups

def get_user_row(conn: sqlite3.Connection, tenant_id: str, ref: str) -> sqlite3.Row | None:
    """A user by object id or userPrincipalName (case-insensitive)."""
    if "@" in ref:
        return conn.execute("SELECT * FROM users WHERE tenant_id = ? AND lower(user_principal_name) = lower(?)",
                            (tenant_id, ref)).fetchone()
    return conn.execute("SELECT * FROM users WHERE id = ? AND tenant_id = ?", (ref, tenant_id)).fetchone()


def get_group_row(conn: sqlite3.Connection, tenant_id: str, group_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM groups WHERE id = ? AND tenant_id = ?", (group_id, tenant_id)).fetchone()


def object_kind(conn: sqlite3.Connection, tenant_id: str, object_id: str) -> str | None:
    """'user', 'group' or None."""
    if conn.execute("SELECT 1 FROM users WHERE id = ? AND tenant_id = ?", (object_id, tenant_id)).fetchone():
        return "user"
    if conn.execute("SELECT 1 FROM groups WHERE id = ? AND tenant_id = ?", (object_id, tenant_id)).fetchone():
        return "group"
    return None


def user_json(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    return user_to_graph(row, licences_for(conn, [row["id"]])[row["id"]])


def _require_user(conn: sqlite3.Connection, tenant_id: str, ref: str) -> sqlite3.Row:
    row = get_user_row(conn, tenant_id, ref)
    if row is None:
        raise not_found(ref)
    return row


def _require_group(conn: sqlite3.Connection, tenant_id: str, group_id: str) -> sqlite3.Row:
    row = get_group_row(conn, tenant_id, group_id)
    if row is None:
        raise not_found(group_id)
    return row


def record_change(conn: sqlite3.Connection, tenant_id: str, kind: str, object_id: str, *,
                  removed: str | None = None, member_id: str | None = None,
                  member_removed: bool | None = None) -> None:
    conn.execute("INSERT INTO changes (tenant_id, kind, object_id, removed, member_id, member_removed) "
                 "VALUES (?, ?, ?, ?, ?, ?)",
                 (tenant_id, kind, object_id, removed, member_id,
                  None if member_removed is None else int(member_removed)))


def _tenant_domain(conn: sqlite3.Connection, tenant_id: str) -> str:
    row = conn.execute("SELECT domain FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
    if row is None:
        raise not_found(tenant_id)
    return row[0]


# ---------------------------------------------------------------------------------------------- users

_USAGE_LOCATION = re.compile(r"^[A-Z]{2}$")


def _check_user_props(props: dict[str, Any], partial: bool) -> None:
    for key in props:
        if key in USER_READ_ONLY and not (key == "id" and not partial):
            raise DirectoryError(400, "Request_BadRequest",
                                 f"Property '{key}' is read-only and cannot be set.")
        if key not in USER_WRITABLE and key != "id":
            raise DirectoryError(400, "Request_BadRequest",
                                 f"Property '{key}' does not exist as a declared property or extension property.")
    loc = props.get("usageLocation")
    if loc is not None and (not isinstance(loc, str) or not _USAGE_LOCATION.match(loc)):
        raise invalid_value("usageLocation", "User")
    if "accountEnabled" in props and not isinstance(props["accountEnabled"], bool):
        raise invalid_value("accountEnabled", "User")
    for key in ("displayName", "userPrincipalName"):
        if key in props and (not isinstance(props[key], str) or not props[key].strip() or len(props[key]) > 256):
            raise invalid_value(key, "User")
    upn = props.get("userPrincipalName")
    if upn is not None and (upn.count("@") != 1 or upn.startswith("@") or upn.endswith("@")):
        raise invalid_value("userPrincipalName", "User")


def _user_columns_and_extra(props: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    cols: dict[str, Any] = {}
    for key, value in props.items():
        if key == "passwordProfile":
            if isinstance(value, dict) and value.get("password"):
                cols["password"] = str(value["password"])
        elif key in USER_COLUMNS and key != "id":
            cols[USER_COLUMNS[key]] = int(value) if key == "accountEnabled" else value
        elif key != "id":
            extra[key] = value
    return cols


def create_user(conn: sqlite3.Connection, tenant_id: str, props: dict[str, Any]) -> dict[str, Any]:
    """Insert a user; requires displayName and userPrincipalName (other properties optional)."""
    for key in ("displayName", "userPrincipalName"):
        if not props.get(key):
            raise invalid_value(key, "User")
    _check_user_props(props, partial=False)
    if get_user_row(conn, tenant_id, props["userPrincipalName"]) is not None:
        raise DirectoryError(400, "Request_BadRequest", UPN_TAKEN)
    user_id = str(props.get("id") or uuid.uuid4())
    extra: dict[str, Any] = {"businessPhones": [], "mobilePhone": None, "officeLocation": None,
                             "preferredLanguage": None}
    cols = _user_columns_and_extra(props, extra)
    cols.update({"id": user_id, "tenant_id": tenant_id, "extra": json.dumps(extra), "created": iso()})
    names = ", ".join(cols)
    conn.execute(f"INSERT INTO users ({names}) VALUES ({', '.join('?' * len(cols))})",  # noqa: S608
                 list(cols.values()))
    record_change(conn, tenant_id, "user", user_id)
    return user_json(conn, _require_user(conn, tenant_id, user_id))


def update_user(conn: sqlite3.Connection, tenant_id: str, user_id: str, props: dict[str, Any]) -> dict[str, Any]:
    row = _require_user(conn, tenant_id, user_id)
    _check_user_props(props, partial=True)
    upn = props.get("userPrincipalName")
    if upn is not None:
        other = get_user_row(conn, tenant_id, upn)
        if other is not None and other["id"] != row["id"]:
            raise DirectoryError(400, "Request_BadRequest", UPN_TAKEN)
    extra = json.loads(row["extra"] or "{}")
    cols = _user_columns_and_extra(props, extra)
    cols["extra"] = json.dumps(extra)
    assignments = ", ".join(f"{c} = ?" for c in cols)
    conn.execute(f"UPDATE users SET {assignments} WHERE id = ?", [*cols.values(), row["id"]])  # noqa: S608
    if "password" in cols:
        # An administrator's password reset revokes the user's refresh tokens and sessions, as Entra does.
        revoke_sign_in_sessions(conn, tenant_id, row["id"])
    record_change(conn, tenant_id, "user", row["id"])
    return user_json(conn, _require_user(conn, tenant_id, row["id"]))


def revoke_sign_in_sessions(conn: sqlite3.Connection, tenant_id: str, user_id: str) -> dict[str, Any]:
    """Graph `revokeSignInSessions`: `signInSessionsValidFromDateTime` becomes now; every refresh token and browser
    session of the user issued before stops working (AADSTS50173 at the token endpoint)."""
    row = _require_user(conn, tenant_id, user_id)
    extra = json.loads(row["extra"] or "{}")
    extra["signInSessionsValidFromDateTime"] = iso()
    conn.execute("UPDATE users SET extra = ? WHERE id = ?", (json.dumps(extra), row["id"]))
    tokens = conn.execute("UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ? AND revoked = 0",
                          (row["id"],)).rowcount
    sessions = conn.execute("UPDATE sessions SET ended = 1 WHERE user_id = ? AND ended = 0", (row["id"],)).rowcount
    record_change(conn, tenant_id, "user", row["id"])
    return {"user": row["id"], "signInSessionsValidFromDateTime": extra["signInSessionsValidFromDateTime"],
            "revoked": tokens, "sessions": sessions}


def delete_user(conn: sqlite3.Connection, tenant_id: str, user_id: str, *, permanent: bool = False) -> dict:
    """Delete a user with their memberships and licences. Delta reports it as `@removed` reason `changed`
    (Graph's soft delete) unless `permanent`, which gives `deleted`."""
    row = _require_user(conn, tenant_id, user_id)
    result = user_json(conn, row)
    for m in conn.execute("SELECT group_id, relation FROM memberships WHERE member_id = ?", (row["id"],)):
        if m["relation"] == "member":
            record_change(conn, tenant_id, "group", m["group_id"], member_id=row["id"], member_removed=True)
    conn.execute("DELETE FROM memberships WHERE member_id = ?", (row["id"],))
    conn.execute("DELETE FROM user_licenses WHERE user_id = ?", (row["id"],))
    conn.execute("DELETE FROM users WHERE id = ?", (row["id"],))
    record_change(conn, tenant_id, "user", row["id"], removed="deleted" if permanent else "changed")
    return result


# ---------------------------------------------------------------------------------------------- licences

def assign_licenses(conn: sqlite3.Connection, tenant_id: str, user_id: str, add: Any, remove: Any) -> dict:
    """Graph `assignLicense`: both lists required; checks usageLocation, SKU existence and free seats."""
    row = _require_user(conn, tenant_id, user_id)
    if not isinstance(add, list) or not isinstance(remove, list):
        missing = [n for n, v in (("addLicenses", add), ("removeLicenses", remove)) if not isinstance(v, list)]
        raise DirectoryError(400, "Request_BadRequest",
                             "One or more parameters of the function import 'assignLicense' are missing from the "
                             f"request payload. The missing parameters are: {', '.join(missing)}.")
    current = {r["sku_id"].lower() for r in conn.execute("SELECT sku_id FROM user_licenses WHERE user_id = ?",
                                                          (row["id"],))}
    skus = {r["sku_id"].lower(): r for r in conn.execute("SELECT * FROM skus WHERE tenant_id = ?", (tenant_id,))}
    adds: list[tuple[str, list[str]]] = []
    for item in add:
        sku = str(item.get("skuId", "")) if isinstance(item, dict) else ""
        disabled = item.get("disabledPlans") or [] if isinstance(item, dict) else []
        if sku.lower() not in skus:
            raise DirectoryError(400, "Request_BadRequest",
                                 f"License {sku} does not correspond to a valid company License.")
        plan_ids = {p["servicePlanId"].lower() for p in json.loads(skus[sku.lower()]["service_plans"])}
        for plan in disabled:
            if str(plan).lower() not in plan_ids:
                raise DirectoryError(400, "Request_BadRequest",
                                     f"Invalid value specified for property 'disabledPlans' of resource "
                                     f"'assignedLicense'. Service plan {plan} is not part of SKU {sku}.")
        adds.append((skus[sku.lower()]["sku_id"], [str(p) for p in disabled]))
    for sku in remove:
        if str(sku).lower() not in current:
            raise DirectoryError(400, "Request_BadRequest", "User does not have a corresponding license.")
    if adds and not row["usage_location"]:
        raise DirectoryError(400, "Request_BadRequest",
                             "License assignment cannot be done for user with invalid usage location.")
    for sku, _disabled in adds:
        if sku.lower() in current:
            continue
        used = conn.execute("SELECT count(*) FROM user_licenses ul JOIN users u ON u.id = ul.user_id "
                            "WHERE u.tenant_id = ? AND lower(ul.sku_id) = lower(?)", (tenant_id, sku)).fetchone()[0]
        if used >= skus[sku.lower()]["prepaid_enabled"]:
            raise DirectoryError(400, "Request_BadRequest",
                                 f"Subscription with SKU {sku} does not have any available licenses.")
    for sku in remove:
        conn.execute("DELETE FROM user_licenses WHERE user_id = ? AND lower(sku_id) = lower(?)", (row["id"], sku))
    for sku, disabled in adds:
        conn.execute("INSERT INTO user_licenses (user_id, sku_id, disabled_plans) VALUES (?, ?, ?) "
                     "ON CONFLICT(user_id, sku_id) DO UPDATE SET disabled_plans = excluded.disabled_plans",
                     (row["id"], sku, json.dumps(disabled)))
    record_change(conn, tenant_id, "user", row["id"])
    return user_json(conn, row)


# ---------------------------------------------------------------------------------------------- groups

_NICK_FORBIDDEN = set('@()\\[]";:.<>, ')


def valid_mail_nickname(nick: Any) -> bool:
    """≤ 64 chars, ASCII 0–127 except @ ( ) \\ [ ] " ; : . < > , and space (docs/microsoft.md §5.4)."""
    return (isinstance(nick, str) and 0 < len(nick) <= 64
            and all(ord(c) < 128 and c not in _NICK_FORBIDDEN for c in nick))


def bind_target(value: Any) -> str:
    """The object id at the end of an `@odata.bind` / `@odata.id` URL."""
    if not isinstance(value, str) or not value.strip():
        raise DirectoryError(400, "Request_BadRequest", f"Invalid object identifier '{value}'.")
    target = value.rstrip("/").rsplit("/", 1)[-1]
    if target.startswith("directoryObjects(") or target.startswith("users(") or target.startswith("groups("):
        target = target.split("(", 1)[1].rstrip(")").strip("'")
    return target


def _nickname_taken(conn: sqlite3.Connection, tenant_id: str, nick: str, mail_scoped: bool,
                    exclude: str | None = None) -> bool:
    """Mail nicknames must be unique among mail-enabled groups (Microsoft 365 groups)."""
    sql = "SELECT 1 FROM groups WHERE tenant_id = ? AND lower(mail_nickname) = lower(?) AND id IS NOT ?"
    if mail_scoped:
        sql += " AND (mail_enabled = 1 OR group_types LIKE '%Unified%')"
    return conn.execute(sql, (tenant_id, nick, exclude)).fetchone() is not None


def _check_group_props(props: dict[str, Any]) -> None:
    for key in props:
        if key not in GROUP_WRITABLE:
            raise DirectoryError(400, "Request_BadRequest",
                                 f"Property '{key}' does not exist as a declared property or extension property.")
    if "displayName" in props and (not isinstance(props["displayName"], str) or not props["displayName"].strip()
                                   or len(props["displayName"]) > 256):
        raise invalid_value("displayName", "Group")
    if "mailNickname" in props and not valid_mail_nickname(props["mailNickname"]):
        raise invalid_value("mailNickname", "Group")
    if "description" in props and props["description"] is not None and (
            not isinstance(props["description"], str) or len(props["description"]) > 1024):
        raise invalid_value("description", "Group")
    if "visibility" in props and props["visibility"] not in (None, "Private", "Public", "HiddenMembership"):
        raise invalid_value("visibility", "Group")


def _bind_list(props: dict[str, Any], key: str) -> list[str]:
    value = props.get(key, [])
    if not isinstance(value, list):
        raise DirectoryError(400, "Request_BadRequest", f"Invalid value specified for property '{key}'.")
    return [bind_target(v) for v in value]


def _check_binds(conn: sqlite3.Connection, tenant_id: str, members: list[str], owners: list[str]) -> None:
    if len(members) + len(owners) > MAX_BINDS:
        raise DirectoryError(400, "Request_BadRequest",
                             f"The number of object references in a single request is limited to {MAX_BINDS}.")
    for object_id in [*members, *owners]:
        if object_kind(conn, tenant_id, object_id) is None:
            raise not_found(object_id)


def create_group(conn: sqlite3.Connection, tenant_id: str, props: dict[str, Any], *,
                 creator_id: str | None = None) -> dict[str, Any]:
    """Create a group (docs/microsoft.md §5.4). A delegated creator of a Microsoft 365 group without owners becomes
    its owner."""
    for key in ("displayName", "mailNickname"):
        if key not in props:
            raise invalid_value(key, "Group")
    for key in ("mailEnabled", "securityEnabled"):
        if not isinstance(props.get(key), bool):
            raise invalid_value(key, "Group")
    _check_group_props(props)
    group_types = props.get("groupTypes") or []
    if not isinstance(group_types, list) or any(t not in ("Unified", "DynamicMembership") for t in group_types):
        raise invalid_value("groupTypes", "Group")
    unified = "Unified" in group_types
    if props["mailEnabled"] and not unified:
        raise DirectoryError(400, "Request_BadRequest",
                             "Creating mail-enabled security groups or distribution lists is not supported "
                             "through Microsoft Graph.")
    members = _bind_list(props, "members@odata.bind")
    owners = _bind_list(props, "owners@odata.bind")
    _check_binds(conn, tenant_id, members, owners)
    nick = props["mailNickname"]
    if (unified or props["mailEnabled"]) and _nickname_taken(conn, tenant_id, nick, mail_scoped=True):
        raise DirectoryError(400, "Request_BadRequest", NICKNAME_TAKEN)
    group_id = str(uuid.uuid4())
    mail = f"{nick}@{_tenant_domain(conn, tenant_id)}" if unified else None
    extra = {k: v for k, v in props.items()
             if k not in GROUP_COLUMNS and not k.endswith("@odata.bind")}
    conn.execute("INSERT INTO groups (id, tenant_id, display_name, description, mail, mail_nickname, "
                 "mail_enabled, security_enabled, group_types, visibility, created, extra) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (group_id, tenant_id, props["displayName"], props.get("description"), mail, nick,
                  int(props["mailEnabled"]), int(props["securityEnabled"]), json.dumps(group_types),
                  props.get("visibility") or ("Public" if unified else None), iso(), json.dumps(extra)))
    record_change(conn, tenant_id, "group", group_id)
    if unified and not owners and creator_id:
        owners = [creator_id]
    for owner in dict.fromkeys(owners):
        conn.execute("INSERT OR IGNORE INTO memberships (group_id, member_id, relation) VALUES (?, ?, 'owner')",
                     (group_id, owner))
    for member in dict.fromkeys(members):
        conn.execute("INSERT OR IGNORE INTO memberships (group_id, member_id, relation) VALUES (?, ?, 'member')",
                     (group_id, member))
        record_change(conn, tenant_id, "group", group_id, member_id=member, member_removed=False)
    return group_to_graph(_require_group(conn, tenant_id, group_id))


def update_group(conn: sqlite3.Connection, tenant_id: str, group_id: str, props: dict[str, Any]) -> dict:
    """PATCH a group; `members@odata.bind` / `owners@odata.bind` add up to 20 references, all or nothing."""
    row = _require_group(conn, tenant_id, group_id)
    _check_group_props(props)
    members = _bind_list(props, "members@odata.bind")
    owners = _bind_list(props, "owners@odata.bind")
    _check_binds(conn, tenant_id, members, owners)
    for relation, ids in (("members", members), ("owners", owners)):
        existing = {r[0] for r in conn.execute(
            "SELECT member_id FROM memberships WHERE group_id = ? AND relation = ?", (row["id"], relation[:-1]))}
        if len(set(ids)) != len(ids) or existing & set(ids):
            raise DirectoryError(400, "Request_BadRequest", MEMBER_EXISTS.format(relation))
    if "mailNickname" in props:
        unified = "Unified" in json.loads(row["group_types"])
        if (unified or row["mail_enabled"]) and _nickname_taken(conn, tenant_id, props["mailNickname"], True,
                                                                exclude=row["id"]):
            raise DirectoryError(400, "Request_BadRequest", NICKNAME_TAKEN)
    cols: dict[str, Any] = {}
    extra = json.loads(row["extra"] or "{}")
    for key, value in props.items():
        if key.endswith("@odata.bind"):
            continue
        if key in GROUP_COLUMNS:
            if key in ("mailEnabled", "securityEnabled"):
                value = int(bool(value))
            elif key == "groupTypes":
                value = json.dumps(value or [])
            cols[GROUP_COLUMNS[key]] = value
        else:
            extra[key] = value
    cols["extra"] = json.dumps(extra)
    assignments = ", ".join(f"{c} = ?" for c in cols)
    conn.execute(f"UPDATE groups SET {assignments} WHERE id = ?", [*cols.values(), row["id"]])  # noqa: S608
    record_change(conn, tenant_id, "group", row["id"])
    for owner in owners:
        conn.execute("INSERT INTO memberships (group_id, member_id, relation) VALUES (?, ?, 'owner')",
                     (row["id"], owner))
    for member in members:
        conn.execute("INSERT INTO memberships (group_id, member_id, relation) VALUES (?, ?, 'member')",
                     (row["id"], member))
        record_change(conn, tenant_id, "group", row["id"], member_id=member, member_removed=False)
    return group_to_graph(_require_group(conn, tenant_id, row["id"]))


def delete_group(conn: sqlite3.Connection, tenant_id: str, group_id: str, *, permanent: bool = False) -> dict:
    row = _require_group(conn, tenant_id, group_id)
    result = group_to_graph(row)
    conn.execute("DELETE FROM memberships WHERE group_id = ? OR member_id = ?", (row["id"], row["id"]))
    conn.execute("DELETE FROM groups WHERE id = ?", (row["id"],))
    record_change(conn, tenant_id, "group", row["id"], removed="deleted" if permanent else "changed")
    return result


def add_member(conn: sqlite3.Connection, tenant_id: str, group_id: str, member_id: str, *,
               relation: str = "member") -> dict[str, Any]:
    """Add a user or group as member (or owner); returns the group. Already there → 400 (exact message)."""
    row = _require_group(conn, tenant_id, group_id)
    if object_kind(conn, tenant_id, member_id) is None:
        raise not_found(member_id)
    if member_id == row["id"]:
        raise DirectoryError(400, "Request_BadRequest", "A group cannot be a member of itself.")
    if conn.execute("SELECT 1 FROM memberships WHERE group_id = ? AND relation = ? AND member_id = ?",
                    (row["id"], relation, member_id)).fetchone():
        raise DirectoryError(400, "Request_BadRequest", MEMBER_EXISTS.format(relation + "s"))
    conn.execute("INSERT INTO memberships (group_id, member_id, relation) VALUES (?, ?, ?)",
                 (row["id"], member_id, relation))
    if relation == "member":
        record_change(conn, tenant_id, "group", row["id"], member_id=member_id, member_removed=False)
    else:
        record_change(conn, tenant_id, "group", row["id"])
    return group_to_graph(row)


def remove_member(conn: sqlite3.Connection, tenant_id: str, group_id: str, member_id: str, *,
                  relation: str = "member") -> dict[str, Any]:
    """Remove a member (or owner); not a member → 404 naming the member id."""
    row = _require_group(conn, tenant_id, group_id)
    cur = conn.execute("DELETE FROM memberships WHERE group_id = ? AND relation = ? AND member_id = ?",
                       (row["id"], relation, member_id))
    if cur.rowcount == 0:
        raise not_found(member_id)
    if relation == "member":
        record_change(conn, tenant_id, "group", row["id"], member_id=member_id, member_removed=True)
    else:
        record_change(conn, tenant_id, "group", row["id"])
    return group_to_graph(row)
