"""The store and the seed: schema, determinism, the demo tenant's shape, large tenants, restarts."""

from __future__ import annotations

import ipaddress
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509

from emulator import seed
from emulator.certs import ensure_certs
from emulator.server import create_app
from emulator.store import Store
from tests.emulator.support import https_session


def fresh(tmp_path: Path, **kw) -> sqlite3.Connection:
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = Store(tmp_path / "tenant.db")
    with store.transaction() as conn:
        seed.seed(conn, **kw)
    return store.conn()


def test_seed_is_deterministic(tmp_path: Path) -> None:
    a = fresh(tmp_path / "a", seed_value=7)
    b = fresh(tmp_path / "b", seed_value=7)
    c = fresh(tmp_path / "c", seed_value=8)
    ids = [[r[0] for r in conn.execute("SELECT id FROM users ORDER BY seq")] for conn in (a, b, c)]
    assert ids[0] == ids[1] and ids[0] != ids[2]
    assert [r[0] for r in a.execute("SELECT id FROM tenants")] == [r[0] for r in b.execute("SELECT id FROM tenants")]


def test_demo_tenant_shape(tmp_path: Path) -> None:
    conn = fresh(tmp_path)
    tenant = conn.execute("SELECT * FROM tenants").fetchone()
    assert (tenant["domain"], tenant["display_name"]) == ("contoso.example", "Contoso")
    users = conn.execute("SELECT * FROM users").fetchall()
    assert 45 <= len(users) <= 60
    upns = {u["user_principal_name"]: u for u in users}
    admin = upns["admin@contoso.example"]
    assert seed.GLOBAL_ADMIN in json.loads(admin["directory_roles"]) and admin["password"] == "demo"
    assert json.loads(upns["adele.vance@contoso.example"]["directory_roles"]) == []
    assert sum(1 for u in users if seed.USER_ADMIN in json.loads(u["directory_roles"])) >= 2
    assert sum(1 for u in users if u["mail"] is None) >= 3
    assert sum(1 for u in users if u["usage_location"] is None) >= 3
    assert sum(1 for u in users if not u["account_enabled"]) >= 3
    heavy = upns["isaiah.langer@contoso.example"]["id"]
    assert conn.execute("SELECT count(*) FROM memberships WHERE member_id = ? AND relation = 'member'",
                        (heavy,)).fetchone()[0] > 200
    named = conn.execute("SELECT * FROM groups WHERE display_name NOT LIKE 'Project Team %'").fetchall()
    assert len(named) == 15
    kinds = {(g["mail_enabled"], g["security_enabled"], g["group_types"]) for g in named}
    assert kinds == {(1, 0, '["Unified"]'), (0, 1, "[]"), (1, 1, "[]")}
    assert all(conn.execute("SELECT count(*) FROM memberships WHERE group_id = ?", (g["id"],)).fetchone()[0]
               for g in named)
    assert conn.execute("SELECT count(*) FROM memberships WHERE relation = 'owner'").fetchone()[0] >= 10
    skus = {r["sku_part_number"]: r for r in conn.execute("SELECT * FROM skus")}
    assert set(skus) == {"ENTERPRISEPACK", "SPE_E5", "POWER_BI_PRO"}
    for sku in skus.values():
        plans = json.loads(sku["service_plans"])
        assert plans and all(set(p) == {"servicePlanId", "servicePlanName", "provisioningStatus", "appliesTo"}
                             for p in plans)
        used = conn.execute("SELECT count(*) FROM user_licenses WHERE sku_id = ?", (sku["sku_id"],)).fetchone()[0]
        assert used <= sku["prepaid_enabled"]
    e5 = skus["SPE_E5"]
    assert e5["prepaid_enabled"] - conn.execute("SELECT count(*) FROM user_licenses WHERE sku_id = ?",
                                                (e5["sku_id"],)).fetchone()[0] == 1


def test_more_tenants(tmp_path: Path) -> None:
    conn = fresh(tmp_path, tenants=3)
    domains = [r[0] for r in conn.execute("SELECT domain FROM tenants ORDER BY rowid")]
    assert domains == ["contoso.example", "fabrikam.example", "northwind.example"]
    assert conn.execute("SELECT count(*) FROM users WHERE user_principal_name = 'admin@fabrikam.example'"
                        ).fetchone()[0] == 1


def test_large_tenant_is_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    conn = fresh(tmp_path, users=20000)
    elapsed = time.perf_counter() - start
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 20000
    assert elapsed < 6, elapsed
    assert conn.execute("SELECT count(DISTINCT lower(user_principal_name)) FROM users").fetchone()[0] == 20000


def test_store_wal_per_thread_connections_and_rollback(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    assert store.conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: other.append(store.conn()))
    thread.start()
    thread.join()
    assert other[0] is not store.conn()
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store.set_setting("x", 1, conn)
        raise RuntimeError
    assert store.get_setting("x") is None
    store.set_setting("x", 2)
    assert store.get_setting("x") == "2"
    assert {r[0] for r in store.conn().execute("SELECT name FROM sqlite_master WHERE type = 'table'")} >= {
        "settings", "tenants", "clients", "users", "groups", "memberships", "skus", "user_licenses", "changes",
        "signing_keys", "grants", "auth_codes", "refresh_tokens", "sessions", "client_permissions"}


def test_create_app_reseeds_when_asked_for_another_tenant(tmp_path: Path) -> None:
    first = create_app(tmp_path)
    key = first.extensions["emulator.store"].get_setting("control_key")
    kept = create_app(tmp_path)
    assert kept.extensions["emulator.store"].get_setting("control_key") == key
    other = create_app(tmp_path, seed=2)
    assert other.extensions["emulator.store"].get_setting("control_key") != key


def test_server_threads_share_a_small_connection_pool(emu_server) -> None:
    http = https_session(emu_server.ca_path)
    store = emu_server.app.extensions["emulator.store"]
    for _ in range(40):
        assert http.get(f"{emu_server.base_url}/{emu_server.tenant_id}/discovery/v2.0/keys").status_code == 200
    assert store.opened <= 8


def test_local_ca_and_server_certificate(tmp_path: Path, emu_server) -> None:
    ca_path, cert_path, _key = ensure_certs(tmp_path)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert cert.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ensure_certs(tmp_path)[0].read_bytes() == ca_path.read_bytes()  # made once, then reused
    by_name = emu_server.base_url.replace("127.0.0.1", "localhost")
    assert https_session(emu_server.ca_path).get(f"{by_name}/common/discovery/v2.0/keys").status_code == 200


def test_close_leaves_a_connection_in_use_by_another_thread_until_it_is_released(tmp_path: Path) -> None:
    """A request still running when the emulator stops must not have its connection closed under it (closing a
    SQLite connection during another thread's query crashes the process); it is closed on release instead."""
    store = Store(tmp_path / "emulator.db")
    idle = store.conn()
    store.release()
    held: list[sqlite3.Connection] = []
    answered: list[int] = []
    closed = threading.Event()

    def request() -> None:
        held.append(store.conn())
        closed.wait(5)
        answered.append(held[0].execute("SELECT count(*) FROM settings").fetchone()[0])  # still works
        store.release()

    thread = threading.Thread(target=request)
    thread.start()
    while not held:
        time.sleep(0.01)
    store.close()
    closed.set()
    thread.join(5)
    assert held[0] is idle and len(answered) == 1  # the request thread kept its (pooled) connection
    with pytest.raises(sqlite3.ProgrammingError):  # ... and closed once the request released it
        held[0].execute("SELECT 1")
