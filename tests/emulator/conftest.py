"""Fixtures of the emulator's tests: one HTTPS emulator per session (faults and clock put back after each test),
fresh test-client apps, and for the Graph tests a seeded tenant copied per test. Helpers live in support.py and
graph_support.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from emulator.server import EmulatorHandle, create_app, start_in_thread
from tests.emulator.graph_support import Graph
from tests.emulator.support import REDIRECT, REDIRECT_HTTPS, REDIRECT_PORTLESS, Browser, Control


@pytest.fixture(scope="session")
def emu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    handle = start_in_thread(tmp_path_factory.mktemp("emulator"),
                             redirect_uris=[REDIRECT, REDIRECT_PORTLESS, REDIRECT_HTTPS])
    yield handle
    handle.stop()


@pytest.fixture
def emu(emu_server: EmulatorHandle) -> Iterator[EmulatorHandle]:
    """The shared emulator; faults and the clock are put back after each test."""
    yield emu_server
    control = Control(emu_server)
    control("DELETE", "/faults")
    control("POST", "/clock", {"reset": True})


@pytest.fixture
def control(emu: EmulatorHandle) -> Control:
    return Control(emu)


@pytest.fixture
def browser(emu: EmulatorHandle) -> Browser:
    return Browser(emu)


@pytest.fixture
def fresh_client(control: Control) -> dict:
    """A newly registered client (no grants yet), so consent state never leaks between tests."""
    return control("POST", "/clients", {"name": "Test app", "redirect_uris": [REDIRECT, REDIRECT_PORTLESS]},
                   expect=201)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """A fresh emulator app for Flask test-client contract checks (base URL taken from the request)."""
    return create_app(Path(tmp_path_factory.mktemp("emulator-app")), redirect_uris=[REDIRECT])


@pytest.fixture
def tenant_id(app: Flask) -> str:
    return app.extensions["emulator.store"].conn().execute(
        "SELECT id FROM tenants ORDER BY rowid LIMIT 1").fetchone()[0]


@pytest.fixture(scope="session")
def graph_template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded demo tenant made once; each test gets a copy of its database (keys included)."""
    path = tmp_path_factory.mktemp("graph-template")
    app = create_app(path)
    store = app.extensions["emulator.store"]
    store.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return path


@pytest.fixture
def graph(graph_template_dir: Path, tmp_path: Path) -> Iterator[Graph]:
    for item in graph_template_dir.iterdir():
        if item.is_file() and item.name != "tenant.db-wal" and item.name != "tenant.db-shm":
            shutil.copy(item, tmp_path / item.name)
    app = create_app(tmp_path)
    yield Graph(app)
    app.extensions["emulator.store"].close()
