"""SQLite store (DIR/tenant.db): schema from emulator/README.md, per-thread connections, transactions."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (id TEXT PRIMARY KEY, display_name TEXT NOT NULL, domain TEXT NOT NULL UNIQUE,
                      created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients (client_id TEXT PRIMARY KEY, secret TEXT NOT NULL, name TEXT NOT NULL,
                      redirect_uris TEXT NOT NULL,
                      front_channel_logout_url TEXT,
                      group_membership_claims INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS users (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE, tenant_id TEXT NOT NULL,
  user_principal_name TEXT NOT NULL,
  display_name TEXT, given_name TEXT, surname TEXT, mail TEXT, job_title TEXT, department TEXT,
  usage_location TEXT, account_enabled INTEGER NOT NULL DEFAULT 1,
  password TEXT NOT NULL DEFAULT 'demo',
  directory_roles TEXT NOT NULL DEFAULT '[]',
  extra TEXT NOT NULL DEFAULT '{}',
  created TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS users_upn ON users(tenant_id, lower(user_principal_name));
CREATE INDEX IF NOT EXISTS users_tenant_seq ON users(tenant_id, seq);
-- $orderby pages (emulator/graph/listing.py orders by COALESCE(lower(column), ''), then seq): one index per sort,
-- so "newest first" or "name Z-A" on 100,000 users reads one page, not every row.
CREATE INDEX IF NOT EXISTS users_order_created ON users(tenant_id, COALESCE(lower(created), ''), seq);
CREATE INDEX IF NOT EXISTS users_order_name ON users(tenant_id, COALESCE(lower(display_name), ''), seq);
CREATE INDEX IF NOT EXISTS users_order_upn ON users(tenant_id, COALESCE(lower(user_principal_name), ''), seq);
CREATE TABLE IF NOT EXISTS groups (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, tenant_id TEXT NOT NULL,
  display_name TEXT NOT NULL, description TEXT, mail TEXT, mail_nickname TEXT NOT NULL,
  mail_enabled INTEGER NOT NULL, security_enabled INTEGER NOT NULL,
  group_types TEXT NOT NULL DEFAULT '[]', visibility TEXT, created TEXT NOT NULL,
  extra TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS groups_tenant_seq ON groups(tenant_id, seq);
CREATE INDEX IF NOT EXISTS groups_order_name ON groups(tenant_id, COALESCE(lower(display_name), ''), seq);
CREATE TABLE IF NOT EXISTS memberships (group_id TEXT NOT NULL, member_id TEXT NOT NULL,
                          relation TEXT NOT NULL DEFAULT 'member',
                          PRIMARY KEY (group_id, relation, member_id));
CREATE INDEX IF NOT EXISTS memberships_member ON memberships(member_id, relation);
CREATE TABLE IF NOT EXISTS skus (tenant_id TEXT NOT NULL, sku_id TEXT NOT NULL, sku_part_number TEXT NOT NULL,
                   prepaid_enabled INTEGER NOT NULL, capability_status TEXT NOT NULL DEFAULT 'Enabled',
                   service_plans TEXT NOT NULL,
                   PRIMARY KEY (tenant_id, sku_id));
CREATE TABLE IF NOT EXISTS user_licenses (user_id TEXT NOT NULL, sku_id TEXT NOT NULL,
                            disabled_plans TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (user_id, sku_id));
CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL,
                      kind TEXT NOT NULL,
                      object_id TEXT NOT NULL,
                      removed TEXT,
                      member_id TEXT, member_removed INTEGER);
CREATE INDEX IF NOT EXISTS changes_tenant_seq ON changes(tenant_id, seq);

-- Identity side (identity.py / tokens.py).
CREATE TABLE IF NOT EXISTS signing_keys (kid TEXT PRIMARY KEY, private_pem TEXT NOT NULL, cert_pem TEXT NOT NULL,
                      created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS client_permissions (client_id TEXT PRIMARY KEY,
                      delegated TEXT NOT NULL DEFAULT '[]',      -- JSON list of Graph scope names (.default)
                      application TEXT NOT NULL DEFAULT '[]');   -- JSON list of Graph app roles (roles claim)
CREATE TABLE IF NOT EXISTS grants (tenant_id TEXT NOT NULL, client_id TEXT NOT NULL,
                      principal TEXT NOT NULL,                   -- user id, or '*' for admin consent (all users)
                      scopes TEXT NOT NULL,                      -- JSON list of short Graph scope names
                      created REAL NOT NULL,
                      PRIMARY KEY (tenant_id, client_id, principal));
CREATE TABLE IF NOT EXISTS auth_codes (code TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, client_id TEXT NOT NULL,
                      user_id TEXT NOT NULL, redirect_uri TEXT NOT NULL, scopes TEXT NOT NULL,
                      nonce TEXT, code_challenge TEXT, code_challenge_method TEXT, sid TEXT NOT NULL,
                      auth_time REAL NOT NULL, created REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS refresh_tokens (token TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, client_id TEXT NOT NULL,
                      user_id TEXT NOT NULL, scopes TEXT NOT NULL, sid TEXT, auth_time REAL NOT NULL,
                      created REAL NOT NULL, last_used REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens(user_id);
CREATE TABLE IF NOT EXISTS sessions (sid TEXT PRIMARY KEY, user_id TEXT NOT NULL, tenant_id TEXT NOT NULL,
                      created REAL NOT NULL, ended INTEGER NOT NULL DEFAULT 0,
                      clients TEXT NOT NULL DEFAULT '[]');       -- JSON list of client ids signed in
-- Conditional Access authentication contexts (c1..c99) a browser session satisfied by the extra (MFA) step, and
-- those an authorization code's ID token carries in `acrs` (asked for with the `claims` parameter).
CREATE TABLE IF NOT EXISTS session_auth_contexts (sid TEXT NOT NULL, context TEXT NOT NULL, at REAL NOT NULL,
                      PRIMARY KEY (sid, context));
CREATE TABLE IF NOT EXISTS code_claims (code TEXT PRIMARY KEY, acrs TEXT NOT NULL);     -- JSON list
-- App roles of an app registration (appRoles) and their assignments to users and groups (appRoleAssignedTo).
CREATE TABLE IF NOT EXISTS app_roles (client_id TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL,
                      display_name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
                      allowed_member_types TEXT NOT NULL DEFAULT '["User"]', is_enabled INTEGER NOT NULL DEFAULT 1,
                      PRIMARY KEY (client_id, id));
CREATE TABLE IF NOT EXISTS app_role_assignments (client_id TEXT NOT NULL, role_id TEXT NOT NULL,
                      principal_id TEXT NOT NULL, principal_type TEXT NOT NULL,   -- User | Group
                      PRIMARY KEY (client_id, role_id, principal_id));

-- Change notifications (notifications.py, graph/subscriptions.py).
CREATE TABLE IF NOT EXISTS subscriptions (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, resource TEXT NOT NULL,
                      change_type TEXT NOT NULL, notification_url TEXT NOT NULL, lifecycle_url TEXT,
                      client_state TEXT, expiration REAL NOT NULL, application_id TEXT, creator_id TEXT,
                      tls_version TEXT NOT NULL DEFAULT 'v1_2', created REAL NOT NULL,
                      since_seq INTEGER NOT NULL,                -- changes up to this seq are not notified
                      reauth_required INTEGER NOT NULL DEFAULT 0, paused INTEGER NOT NULL DEFAULT 0);
"""


class Store:
    """One SQLite database. Each thread uses one connection at a time (autocommit mode, WAL); connections are
    pooled, so the werkzeug server's thread-per-request model does not open one connection per request.
    `release()` (called at the end of every app context) hands the thread's connection back to the pool."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._pool: list[sqlite3.Connection] = []
        self._closed = False
        self.opened = 0  # connections opened so far (the pool keeps this small)
        self._lock = threading.Lock()
        conn = self.conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            self.opened += 1
        return conn

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                conn = self._pool.pop() if self._pool else None
            if conn is None:
                conn = self._connect()
            self._local.conn = conn
        return conn

    def release(self) -> None:
        """Give this thread's connection back to the pool (rolled back if a transaction was left open)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        with self._lock:
            if not self._closed:
                self._pool.append(conn)
                return
        conn.close()  # the store was closed while this thread's request was still running

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        row = self.conn().execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_setting(self, key: str, value: object, conn: sqlite3.Connection | None = None) -> None:
        (conn or self.conn()).execute(
            "INSERT INTO settings(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the idle connections and this thread's. A connection another thread still holds (a request
        running past the server's shutdown) is closed when that thread releases it: closing it under a running
        query would crash the process."""
        mine = getattr(self._local, "conn", None)
        with self._lock:
            self._closed = True
            idle, self._pool = self._pool, []
        self._local.conn = None
        for conn in [*idle, *([mine] if mine is not None else [])]:
            with contextlib.suppress(Exception):
                conn.close()
