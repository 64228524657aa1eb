"""Shared helpers: store, base URL, tenants, registered clients, users (docs/microsoft.md §1.1)."""

from __future__ import annotations

import sqlite3
from urllib.parse import urlsplit

from flask import Response, current_app, jsonify, request

from emulator.clients import client_record
from emulator.store import Store

SPECIAL_TENANTS = ("common", "organizations", "consumers")
CONSUMERS_TID = "9188040d-6c67-4c5b-b112-36a304b66dad"
NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def store() -> Store:
    return current_app.extensions["emulator.store"]


def db() -> sqlite3.Connection:
    return store().conn()


def base_url() -> str:
    return current_app.config.get("EMULATOR_BASE_URL") or request.host_url.rstrip("/")


def json_response(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def resolve_tenant(segment: str) -> sqlite3.Row | None:
    """The tenant named by a path segment (its id or its domain)."""
    return db().execute("SELECT * FROM tenants WHERE id = ? OR domain = ?",
                        (segment.lower(), segment.lower())).fetchone()


def get_client(client_id: str) -> dict | None:
    return client_record(db(), client_id)


def redirect_matches(registered: str, given: str) -> bool:
    """Exact match, except that http://localhost and http://127.0.0.1 registrations ignore the port."""
    if registered == given:
        return True
    r, g = urlsplit(registered), urlsplit(given)
    if r.scheme == "http" and r.hostname in ("localhost", "127.0.0.1"):
        return (g.scheme, g.hostname, g.path or "/", g.query) == (r.scheme, r.hostname, r.path or "/", r.query)
    return False


def redirect_registered(client: dict, uri: str) -> bool:
    return any(redirect_matches(reg, uri) for reg in client["redirect_uris"])


def user_by_id(user_id: str) -> sqlite3.Row | None:
    return db().execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()


def user_by_upn(upn: str, tenant_id: str | None) -> sqlite3.Row | None:
    if tenant_id:
        return db().execute("SELECT * FROM users WHERE tenant_id = ? AND lower(user_principal_name) = ?",
                            (tenant_id, upn.lower())).fetchone()
    return db().execute("SELECT * FROM users WHERE lower(user_principal_name) = ?", (upn.lower(),)).fetchone()
