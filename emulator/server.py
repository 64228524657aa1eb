"""The emulator's Flask app, its HTTPS server, and a thread launcher for tests in other packages."""

from __future__ import annotations

import json
import secrets
import ssl
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from emulator import certs, control, graph, identity, notifications, seed
from emulator.clients import upsert_client
from emulator.config import CONFIG_FILE, config_dict
from emulator.store import Store
from emulator.tokens import KeyRing

DB_FILE = "tenant.db"
# The gateway's own callbacks (datasource authorization and end-user sign-in); loopback ports are ignored.
DEFAULT_REDIRECT_URIS = ["http://localhost:5000/admin/datasources/authorize/callback",
                         "http://localhost:5000/sso/callback", "http://127.0.0.1:5000/",
                         "http://127.0.0.1:5000/admin/datasources/authorize/callback",
                         "http://127.0.0.1:5000/sso/callback"]


class Settings:
    """In-memory copy of the `settings` table; refresh() after the control API changes it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.refresh()

    def refresh(self) -> None:
        get = self.store.get_setting
        self.clock_offset = float(get("clock_offset", "0") or 0)
        self.delta_epoch = int(get("delta_epoch", "0") or 0)
        self.control_key = get("control_key", "") or ""
        self.active_kid = get("active_kid", "") or ""

    def set(self, key: str, value: object) -> None:
        self.store.set_setting(key, value)
        self.refresh()


def _reset_files(data: Path) -> None:
    for name in (DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm", CONFIG_FILE):
        (data / name).unlink(missing_ok=True)


def _prepare_store(data: Path, *, users: int | None, seed_value: int, tenants: int, reset: bool,
                   client_id: str | None, client_secret: str | None, redirect_uris: list[str] | None,
                   front_channel_logout_url: str | None) -> Store:
    params = json.dumps({"seed": seed_value, "tenants": tenants, "users": users})
    if reset:
        _reset_files(data)
    store = Store(data / DB_FILE)
    existing = store.get_setting("seed_params")
    if existing is not None and existing != params:
        # Asked for a different tenant than the one on disk: start afresh rather than mix them.
        store.close()
        _reset_files(data)
        store = Store(data / DB_FILE)
        existing = None
    if existing is None:
        with store.transaction() as conn:
            seed.seed(conn, seed_value=seed_value, tenants=tenants, users=users)
            store.set_setting("seed_params", params, conn)
            store.set_setting("control_key", secrets.token_urlsafe(24), conn)
            store.set_setting("delta_epoch", 0, conn)
            store.set_setting("clock_offset", 0, conn)
            default_id = str(uuid.UUID(int=seed.Ids(seed_value + 7919).rng.getrandbits(128), version=4))
            store.set_setting("gateway_client_id", client_id or default_id, conn)
            upsert_client(conn, client_id or default_id, secret=client_secret, name="O365 SSO Gateway",
                          redirect_uris=redirect_uris or DEFAULT_REDIRECT_URIS,
                          front_channel_logout_url=front_channel_logout_url)
        with store.transaction() as conn:
            # Table statistics for SQLite's planner: without them a filter on ids (`id in (...)`) over a large
            # tenant walks the (tenant, seq) index instead of the primary key (100,000 users: 140 ms, not 0.5 ms).
            conn.execute("ANALYZE")
    elif client_id or client_secret or redirect_uris or front_channel_logout_url:
        with store.transaction() as conn:
            cid = client_id or store.get_setting("gateway_client_id") or ""
            upsert_client(conn, cid, secret=client_secret, name="O365 SSO Gateway", redirect_uris=redirect_uris,
                          front_channel_logout_url=front_channel_logout_url)
            store.set_setting("gateway_client_id", cid, conn)
    return store


def create_app(data_dir: str | Path, *, users: int | None = None, seed: int = 1, tenants: int = 1,
               reset: bool = False, base_url: str | None = None, client_id: str | None = None,
               client_secret: str | None = None, redirect_uris: list[str] | None = None,
               front_channel_logout_url: str | None = None) -> Flask:
    """Build the emulator app on DIR (seeding it on first use). base_url None = taken from each request."""
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    store = _prepare_store(data, users=users, seed_value=seed, tenants=tenants, reset=reset,
                           client_id=client_id, client_secret=client_secret, redirect_uris=redirect_uris,
                           front_channel_logout_url=front_channel_logout_url)
    app = Flask("emulator", template_folder=str(Path(__file__).parent / "templates"), static_folder=None)
    app.config.update(EMULATOR_BASE_URL=base_url.rstrip("/") if base_url else None, EMULATOR_DATA_DIR=str(data),
                      JSON_SORT_KEYS=False)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["emulator.store"] = store
    app.extensions["emulator.settings"] = Settings(store)
    app.extensions["emulator.keys"] = KeyRing(store)

    control.init_app(app)
    app.register_blueprint(identity.bp)
    app.register_blueprint(graph.bp)
    notifications.init_app(app)
    _release_connections_per_request(app, store)
    return app


def _release_connections_per_request(app: Flask, store: Store) -> None:
    """Hand the thread's SQLite connection back to the pool when a request leaves the app (at the WSGI
    boundary, so requests dispatched inside a request, such as $batch items, keep the outer connection)."""
    inner = app.wsgi_app

    def wsgi(environ: dict, start_response: Any) -> Any:
        try:
            return inner(environ, start_response)
        finally:
            store.release()

    app.wsgi_app = wsgi  # type: ignore[method-assign]


def ssl_context(data_dir: str | Path, host: str = "127.0.0.1") -> ssl.SSLContext:
    _ca, cert, key = certs.ensure_certs(data_dir, (host,))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    ctx.num_tickets = 0  # no TLS 1.3 session tickets: clients here never resume, and they delayed replies
    return ctx


class QuietHandler(WSGIRequestHandler):
    """No per-request log lines (they cost time and flood the launcher's pipes) and no Nagle delay: werkzeug
    writes headers and body separately, and Nagle + delayed ACK held every body back by ~10 ms."""

    disable_nagle_algorithm = True
    log_requests = False

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.log_requests:
            super().log_request(code, size)


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)  # noqa: S104


def make_https_server(data_dir: str | Path, host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False,
                      **kw: Any) -> tuple[BaseWSGIServer, Flask, dict]:
    """Create (not start) the threaded HTTPS server; writes DIR/emulator.json. Returns (server, app, config)."""
    ctx = ssl_context(data_dir, host)
    app = create_app(data_dir, **kw)
    handler = type("Handler", (QuietHandler,), {"log_requests": log_requests})
    server = make_server(host, port, app, threaded=True, ssl_context=ctx, request_handler=handler)
    base_url = f"https://{_url_host(host)}:{server.port}"
    app.config["EMULATOR_BASE_URL"] = base_url
    config = config_dict(app, base_url)
    (Path(data_dir) / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return server, app, config


def print_facts(config: dict, out: Any = None) -> None:
    out = out or sys.stdout
    domain = config["tenants"][0]["domain"]
    lines = [f"Base URL: {config['base_url']}", f"Graph URL: {config['graph_url']}"]
    lines += [f"Tenant: {t['id']} {t['domain']} ({t['display_name']})" for t in config["tenants"]]
    lines += [f"CA bundle: {config['ca_bundle']}", f"Client ID: {config['client_id']}",
              f"Client secret: {config['client_secret']}",
              f"Redirect URIs: {' '.join(config.get('redirect_uris', []))}",
              f"Control key: {config['control_key']}",
              f"Demo sign-in: admin@{domain} (Global Administrator) or adele.vance@{domain}, password demo",
              f"EMULATOR READY {config['base_url']}"]
    for line in lines:
        print(line, file=out, flush=True)


def serve(data_dir: str | Path, host: str = "127.0.0.1", port: int = 0, **kw: Any) -> None:
    """Serve over HTTPS until interrupted, after printing the facts and the ready line."""
    server, _app, config = make_https_server(data_dir, host, port, **kw)
    print_facts(config)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@dataclass
class EmulatorHandle:
    """A running emulator (see start_in_thread)."""

    base_url: str
    ca_path: str
    config: dict
    app: Flask
    server: BaseWSGIServer
    thread: threading.Thread = field(repr=False)

    @property
    def tenant_id(self) -> str:
        return self.config["tenants"][0]["id"]

    def stop(self) -> None:
        notifications.notifier(self.app).stop()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        self.app.extensions["emulator.store"].close()


def start_in_thread(data_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0, **kw: Any) -> EmulatorHandle:
    """Start the emulator on a background thread (port 0 = any free port). Keyword arguments as create_app."""
    server, app, config = make_https_server(data_dir, host, port, **kw)
    # serve_forever checks for shutdown every poll_interval: 0.05 s, not its 0.5 s default, so stop() (once per test
    # in the suite) returns at once
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="tenant-emulator", daemon=True)
    thread.start()
    return EmulatorHandle(config["base_url"], config["ca_bundle"], config, app, server, thread)
