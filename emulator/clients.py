"""Registered app clients (the emulator's app registrations): create or update, and read them in either shape."""

from __future__ import annotations

import json
import secrets
import sqlite3
import uuid
from typing import Any

from emulator import seed


def _client_row(conn: sqlite3.Connection, client_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT c.*, p.delegated, p.application FROM clients c LEFT JOIN client_permissions p "
                        "USING (client_id) WHERE client_id = ?", (client_id,)).fetchone()


def client_record(conn: sqlite3.Connection, client_id: str) -> dict | None:
    """The client as the Entra ID side uses it: the table's columns, lists decoded, `delegated`/`application`."""
    row = _client_row(conn, client_id)
    if row is None:
        return None
    client = dict(row)
    client["redirect_uris"] = json.loads(row["redirect_uris"])
    client["delegated"] = json.loads(row["delegated"] or "[]")
    client["application"] = json.loads(row["application"] or "[]")
    return client


def client_json(conn: sqlite3.Connection, client_id: str) -> dict:
    """The client as the control API and emulator.json show it ({} when unknown)."""
    row = _client_row(conn, client_id)
    if row is None:
        return {}
    return {"client_id": row["client_id"], "client_secret": row["secret"], "name": row["name"],
            "redirect_uris": json.loads(row["redirect_uris"]),
            "front_channel_logout_url": row["front_channel_logout_url"],
            "group_membership_claims": bool(row["group_membership_claims"]),
            "delegated_permissions": json.loads(row["delegated"] or "[]"),
            "application_permissions": json.loads(row["application"] or "[]")}


def upsert_client(conn: Any, client_id: str, *, secret: str | None = None, name: str | None = None,
                  redirect_uris: list[str] | None = None, front_channel_logout_url: str | None = None,
                  group_membership_claims: bool | None = None, delegated: list[str] | None = None,
                  application: list[str] | None = None) -> dict:
    """Create or update a registered client (only the given fields change)."""
    row = conn.execute("SELECT * FROM clients WHERE client_id = ?", (client_id,)).fetchone()
    if row is None:
        conn.execute("INSERT INTO clients (client_id, secret, name, redirect_uris, front_channel_logout_url, "
                     "group_membership_claims) VALUES (?, ?, ?, ?, ?, ?)",
                     (client_id, secret or secrets.token_urlsafe(30), name or "Registered app",
                      json.dumps(redirect_uris or []), front_channel_logout_url,
                      1 if group_membership_claims in (None, True) else 0))
        conn.execute("INSERT OR IGNORE INTO client_permissions (client_id, delegated, application) "
                     "VALUES (?, ?, ?)", (client_id, json.dumps(delegated if delegated is not None else
                                                                  seed.GATEWAY_DELEGATED),
                                          json.dumps(application if application is not None else
                                                     seed.GATEWAY_APPLICATION)))
    else:
        updates = {"secret": secret, "name": name, "front_channel_logout_url": front_channel_logout_url,
                   "redirect_uris": json.dumps(redirect_uris) if redirect_uris is not None else None,
                   "group_membership_claims": (int(bool(group_membership_claims))
                                               if group_membership_claims is not None else None)}
        for column, value in updates.items():
            if value is not None:
                conn.execute(f"UPDATE clients SET {column} = ? WHERE client_id = ?",  # noqa: S608 - fixed names
                             (value, client_id))
        conn.execute("INSERT OR IGNORE INTO client_permissions (client_id) VALUES (?)", (client_id,))
        if delegated is not None:
            conn.execute("UPDATE client_permissions SET delegated = ? WHERE client_id = ?",
                         (json.dumps(delegated), client_id))
        if application is not None:
            conn.execute("UPDATE client_permissions SET application = ? WHERE client_id = ?",
                         (json.dumps(application), client_id))
    return client_json(conn, client_id)


# -- app roles (an app registration's appRoles and their assignments; docs/microsoft.md §1.10)


def app_role_json(row: sqlite3.Row) -> dict:
    """An appRole as Graph shows it on the application object."""
    return {"id": row["id"], "value": row["value"], "displayName": row["display_name"],
            "description": row["description"], "allowedMemberTypes": json.loads(row["allowed_member_types"]),
            "isEnabled": bool(row["is_enabled"]), "origin": "Application"}


def app_roles(conn: sqlite3.Connection, client_id: str) -> list[dict]:
    return [app_role_json(r) for r in conn.execute(
        "SELECT * FROM app_roles WHERE client_id = ? ORDER BY value", (client_id,))]


def add_app_role(conn: sqlite3.Connection, client_id: str, value: str, display_name: str | None = None,
                 description: str = "", allowed_member_types: list[str] | None = None,
                 role_id: str | None = None) -> dict:
    """Add (or update, same value) an app role; `value` is what the `roles` claim carries."""
    found = conn.execute("SELECT id FROM app_roles WHERE client_id = ? AND value = ?", (client_id, value)).fetchone()
    role_id = found[0] if found else role_id or str(uuid.uuid4())
    conn.execute("INSERT OR REPLACE INTO app_roles (client_id, id, value, display_name, description, "
                 "allowed_member_types, is_enabled) VALUES (?, ?, ?, ?, ?, ?, 1)",
                 (client_id, role_id, value, display_name or value, description,
                  json.dumps(allowed_member_types or ["User"])))
    return app_role_json(conn.execute("SELECT * FROM app_roles WHERE client_id = ? AND id = ?",
                                      (client_id, role_id)).fetchone())


def find_app_role(conn: sqlite3.Connection, client_id: str, role: str) -> sqlite3.Row | None:
    """An app role by id or value."""
    return conn.execute("SELECT * FROM app_roles WHERE client_id = ? AND (id = ? OR value = ?)",
                        (client_id, role, role)).fetchone()


def assign_app_role(conn: sqlite3.Connection, client_id: str, role_id: str, principal_id: str,
                    principal_type: str) -> dict:
    """appRoleAssignedTo: a user or a group (its direct members get the role; nested groups do not)."""
    conn.execute("INSERT OR IGNORE INTO app_role_assignments (client_id, role_id, principal_id, principal_type) "
                 "VALUES (?, ?, ?, ?)", (client_id, role_id, principal_id, principal_type))
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{client_id}:{role_id}:{principal_id}")),
            "appRoleId": role_id, "principalId": principal_id, "principalType": principal_type,
            "resourceId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{client_id}"))}


def unassign_app_role(conn: sqlite3.Connection, client_id: str, role_id: str, principal_id: str) -> bool:
    return conn.execute("DELETE FROM app_role_assignments WHERE client_id = ? AND role_id = ? AND principal_id = ?",
                        (client_id, role_id, principal_id)).rowcount > 0


def user_app_roles(conn: sqlite3.Connection, client_id: str, user_id: str) -> list[str]:
    """The `roles` claim: values of the enabled app roles assigned to the user or to a group they are a direct
    member of."""
    rows = conn.execute(
        "SELECT DISTINCT r.value FROM app_role_assignments a JOIN app_roles r "
        "ON r.client_id = a.client_id AND r.id = a.role_id WHERE a.client_id = ? AND r.is_enabled = 1 "
        "AND (a.principal_id = ? OR a.principal_id IN (SELECT group_id FROM memberships WHERE member_id = ? "
        "AND relation = 'member')) ORDER BY r.value", (client_id, user_id, user_id))
    return [r[0] for r in rows]
