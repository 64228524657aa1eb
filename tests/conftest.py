"""Shared fixtures: every app-level test runs on SQLite and on PostgreSQL (its own schema per run).

`--db sqlite` or `--db postgresql` narrows the run. Browser tests drive Debian's Chromium through Playwright.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from werkzeug.serving import make_server

from emulator.server import EmulatorHandle, start_in_thread

if TYPE_CHECKING:
    from sso.sessions import DatabaseStore, RedisStore
    from tests.o365_ops_helpers import Tenant

BACKENDS = ("sqlite", "postgresql")
POSTGRES_SERVER = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct-horse-battery"
USER_EMAIL = "user@example.com"
USER_PASSWORD = "plain-user-password"
TEST_FERNET_KEY = "x1vUJ3GXj4gWn3LkqOFd6V5Oq6l2sHfQ0t0Zf2J8m1c="
CALLBACK_PATH = "/admin/datasources/authorize/callback"  # where Microsoft sends a datasource's authorization


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", default=",".join(BACKENDS), help="comma-separated backends: sqlite,postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames:
        wanted = [name for name in metafunc.config.getoption("--db").split(",") if name]
        if metafunc.definition.get_closest_marker("one_backend"):
            wanted = wanted[:1]  # what it checks does not depend on the database (page markup)
        metafunc.parametrize("database_url", wanted, indirect=True, scope="session")


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database for this test run: a SQLite file, or a fresh PostgreSQL schema."""
    backend = request.param
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'gateway.db'}"
        _migrate(url)
        yield url
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin_engine = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:  # a failure here is a real failure, never a skip
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_SERVER}?options=-csearch_path%3D{schema}"
    try:
        _migrate(url)
        yield url
    finally:
        with admin_engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin_engine.dispose()


def _migrate(url: str) -> None:
    from flask_migrate import upgrade

    app = _build_app(url, Path(os.environ.get("TMPDIR", "/tmp")))
    with app.app_context():
        upgrade()
        from core.extensions import db

        db.engine.dispose()


def _build_app(url: str, instance: Path, **overrides: object) -> Flask:
    from app import create_app

    config = {
        "TESTING": True,
        # No idle pooled connections: parallel workers, live servers and job threads share one PostgreSQL.
        "SQLALCHEMY_ENGINE_OPTIONS": {"poolclass": NullPool},
        "ENV": {"DATABASE_URL": url, "SECRET_KEY": "test-secret-key-0123456789-abcdefghijkl",
                "TOKEN_ENCRYPTION_KEYS": TEST_FERNET_KEY},
        **overrides,
    }
    return create_app(config)


@pytest.fixture
def app_env() -> dict[str, str]:
    """Extra environment for the app under test; modules override it (e.g. to point at the emulator)."""
    return {}


@pytest.fixture
def app(database_url: str, tmp_path: Path, app_env: dict[str, str]) -> Iterator[Flask]:
    from core.extensions import db, limiter
    from core.models import ensure_roles

    application = _build_app(database_url, tmp_path, ENV={
        "DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key-0123456789-abcdefghijkl",
        "TOKEN_ENCRYPTION_KEYS": TEST_FERNET_KEY, **app_env})
    with application.app_context():
        limiter.reset()
        ensure_roles()
        db.session.commit()
        yield application
        db.session.rollback()
        for table in reversed(db.metadata.sorted_tables):
            if table.name != "roles":
                db.session.execute(table.delete())
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(params=["database", "redis"])
def store_backend(request: pytest.FixtureRequest) -> str:
    """Where the state all processes share (sessions, sign-in throttle) lives: the database, or Redis. A module
    that asks for it runs each test on both; its `app_env` adds `store_env`."""
    return str(request.param)


@pytest.fixture
def store_env(store_backend: str) -> dict[str, str]:
    """The app settings that select `store_backend`."""
    return {"REDIS_URL": REDIS_TEST_URL} if store_backend == "redis" else {}


@pytest.fixture
def redis_prefix(app: Flask, store_backend: str) -> Iterator[str]:
    """A Redis key prefix of this test's own (parallel workers share one Redis); its keys are deleted after."""
    import redis

    name = f"gwtest-{uuid.uuid4().hex[:10]}"
    app.config["REDIS_PREFIX"] = name
    yield name
    if store_backend == "redis":
        connection = redis.Redis.from_url(REDIS_TEST_URL)
        keys = list(connection.scan_iter(f"{name}:*"))
        if keys:
            connection.delete(*keys)
        connection.close()


@pytest.fixture
def sessions(app: Flask, store_backend: str, redis_prefix: str) -> DatabaseStore | RedisStore:
    """The server-side session store in use, checked to be the one `store_backend` selects."""
    from sso.sessions import DatabaseStore, RedisStore, store

    app.extensions.pop("gw_session_store", None)  # made again with this test's settings and prefix
    found = store()
    assert isinstance(found, RedisStore if store_backend == "redis" else DatabaseStore)
    return found


class FreshGlobalsClient(FlaskClient):
    """Each request gets an empty `g`, as in production, although the test keeps an app context pushed."""

    def open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        from flask import g

        for name in list(g):
            g.pop(name)
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = FreshGlobalsClient
    return app.test_client()


class ContextlessClient(FlaskClient):
    """Each request runs as under gunicorn: no app context of the test's around it (its own is pushed and popped
    by Flask, so teardown closes the request's database session), and the whole body, streamed or not, is read
    before the request's contexts are gone. The `app` fixture's pushed context cannot hide a production failure
    (a generator using the request's closed session, a value left in `g`, an object from the test's session)."""

    def open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        import contextvars

        kwargs.setdefault("buffered", True)
        return contextvars.Context().run(super().open, *args, **kwargs)  # an empty context: no app context


@pytest.fixture
def contextless_client(app: Flask) -> FlaskClient:
    """A client for requests made without the test's app context: see ContextlessClient."""
    return ContextlessClient(app, app.response_class, use_cookies=True)


def make_user(email: str, password: str | None, *roles: str, active: bool = True, name: str = ""):  # type: ignore[no-untyped-def]
    from core.extensions import db
    from core.models import User, role_by_name

    user = User(email=email, display_name=name or email.split("@")[0].title(), active=active)
    user.set_password(password)
    user.roles = [role_by_name(role) for role in roles]
    db.session.add(user)
    db.session.commit()
    return user


@pytest.fixture
def admin_user(app: Flask):  # type: ignore[no-untyped-def]
    return make_user(ADMIN_EMAIL, ADMIN_PASSWORD, "Administrator", name="Ada Admin")


@pytest.fixture
def plain_user(app: Flask):  # type: ignore[no-untyped-def]
    return make_user(USER_EMAIL, USER_PASSWORD, "User", name="Paul Plain")


def sign_in(client: FlaskClient, email: str, password: str):  # type: ignore[no-untyped-def]
    """Sign in through the real form, CSRF token included."""
    import re

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    assert token, "the sign-in form carries a CSRF token"
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token.group(1)})


def csrf_token(client: FlaskClient, path: str) -> str:
    import re

    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, f"{path} carries a CSRF token"
    return match.group(1)


@pytest.fixture
def admin_client(client: FlaskClient, admin_user) -> FlaskClient:  # type: ignore[no-untyped-def]
    assert sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 302
    return client


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorHandle]:
    """A fresh tenant emulator (Contoso, over HTTPS) for this test, with the datasource callback registered.
    The app uses it when the folder's or module's `app_env` says so (`emulator_env`); a folder or module that
    needs another tenant (two tenants, more users, other redirect URIs) overrides this fixture."""
    handle = start_in_thread(tmp_path / "emulator", redirect_uris=[
        f"http://localhost{CALLBACK_PATH}", f"http://127.0.0.1{CALLBACK_PATH}"])
    yield handle
    handle.stop()


@pytest.fixture
def sso_emulator(tmp_path: Path) -> Iterator[EmulatorHandle]:
    """A fresh tenant emulator with the sign-in, sign-out and datasource callbacks registered."""
    from tests.sso_helpers import SSO_PATHS  # not at the top: sso_helpers imports this module

    handle = start_in_thread(tmp_path / "emulator", redirect_uris=[
        f"http://{host}{path}" for host in ("localhost", "127.0.0.1") for path in SSO_PATHS])
    yield handle
    handle.stop()


@pytest.fixture
def tenant(emulator: EmulatorHandle) -> Tenant:
    """The emulated tenant's state, read straight from its store."""
    from tests.o365_ops_helpers import Tenant  # not at the top: o365_ops_helpers imports this module

    return Tenant(emulator)


class LiveServer:
    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)  # stop() in 50 ms
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(app)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Debian's Chromium, offline: no DNS query leaves the machine."""
    return {
        **browser_type_launch_args,
        "executable_path": os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
        "args": [
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
            "--disable-quic",
            "--disable-gpu",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "ignore_https_errors": True}


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


def open_admin_menu(page) -> None:  # type: ignore[no-untyped-def]
    """Open the Administration drop-down once the page's scripts have run (before that, the toggle is a link)."""
    from playwright.sync_api import expect

    page.wait_for_load_state("load")
    toggle = page.locator("#admin-menu")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
