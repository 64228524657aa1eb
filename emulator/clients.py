"""Registered app clients (the emulator's app registrations): create or update, and read them in either shape."""

from __future__ import annotations

import json
import secrets
import sqlite3
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
