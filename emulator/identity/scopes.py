"""Scopes and consent grants: parsing, what was granted, who consents for all (docs/microsoft.md §1.4, §2)."""

from __future__ import annotations

import json
import sqlite3

from emulator import clock, seed
from emulator.identity.common import db
from emulator.tokens import GRAPH_RESOURCE

OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
GRAPH_PREFIXES = (GRAPH_RESOURCE + "/", "00000003-0000-0000-c000-000000000000/")
USER_CONSENTABLE_ALL = {"user.readbasic.all"}


def is_admin_only(scope: str) -> bool:
    low = scope.lower()
    return low.endswith(".all") and low not in USER_CONSENTABLE_ALL


def parse_scopes(raw: str, client: dict) -> tuple[list[str], list[str], list[str]]:
    """(oidc scopes, Graph short scope names, other resources) of a space-separated scope string."""
    oidc: list[str] = []
    graph: list[str] = []
    other: list[str] = []
    for item in raw.split():
        low = item.lower()
        if low in OIDC_SCOPES:
            if low not in oidc:
                oidc.append(low)
            continue
        name = None
        for prefix in GRAPH_PREFIXES:
            if low.startswith(prefix):
                name = item[len(prefix):]
        if name is None and "/" not in item and ":" not in item:
            name = item
        if name is None:
            other.append(item)
            continue
        names = client["delegated"] if name.lower() == ".default" else [name]
        for n in names:
            if n.lower() not in {g.lower() for g in graph}:
                graph.append(n)
    return oidc, graph, other


def granted_scopes(tenant_id: str, client_id: str, user_id: str) -> list[str]:
    """Scopes the user granted the client, plus those granted for the whole organisation (principal '*')."""
    rows = db().execute("SELECT scopes FROM grants WHERE tenant_id = ? AND client_id = ? AND principal IN (?, '*')",
                        (tenant_id, client_id, user_id)).fetchall()
    out: list[str] = []
    for row in rows:
        for s in json.loads(row[0]):
            if s.lower() not in {o.lower() for o in out}:
                out.append(s)
    return out


def missing_scopes(wanted: list[str], have: list[str]) -> list[str]:
    low = {h.lower() for h in have}
    return [w for w in wanted if w.lower() not in low]


def add_grant(conn: sqlite3.Connection, tenant_id: str, client_id: str, principal: str, scopes: list[str]) -> None:
    row = conn.execute("SELECT scopes FROM grants WHERE tenant_id = ? AND client_id = ? AND principal = ?",
                       (tenant_id, client_id, principal)).fetchone()
    current = json.loads(row[0]) if row else []
    merged = current + missing_scopes(scopes, current)
    conn.execute("INSERT INTO grants (tenant_id, client_id, principal, scopes, created) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT (tenant_id, client_id, principal) DO UPDATE SET scopes = excluded.scopes",
                 (tenant_id, client_id, principal, json.dumps(merged), clock.now()))


def can_admin_consent(user: sqlite3.Row) -> bool:
    return bool(seed.CONSENT_ADMIN_ROLES.intersection(json.loads(user["directory_roles"])))
