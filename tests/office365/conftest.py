"""Fixtures for the Graph client tests."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emulator.server import start_in_thread
from office365.graph import GraphClient, StaticTokenSource, Timeouts
from office365.operations import GraphAccess
from tests.office365.emulator_support import Control, EmulatorTokens, graph_client
from tests.office365.fakes import FAST, ScriptedGraph, Sleeps


@pytest.fixture
def graph() -> Iterator[ScriptedGraph]:
    server = ScriptedGraph()
    yield server
    server.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(graph: ScriptedGraph, sleeps: Sleeps) -> Callable[..., GraphClient]:
    def make(**kw: Any) -> GraphClient:
        tokens = kw.pop("tokens", None) or StaticTokenSource("tok-1", frozenset({"User.Read.All"}))
        kw.setdefault("retry", FAST)
        kw.setdefault("timeouts", Timeouts(connect=1.0, read=1.0))
        return GraphClient(graph.base_url, tokens, sleep=sleeps, **kw)

    return make


# -- the real emulator over HTTPS (integration tests) ---------------------------------------------------------


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh emulator (demo tenant) per test module, so modules do not depend on each other's changes."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    handle = start_in_thread(tmp_path_factory.mktemp("office365-emulator"))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def domain(emu: Any) -> str:
    return emu.config["tenants"][0]["domain"]


@pytest.fixture(scope="module")
def admin_tokens(emu: Any, domain: str) -> EmulatorTokens:
    """The Global Administrator's delegated token (consents for the organisation on first sign-in)."""
    return EmulatorTokens(emu, f"admin@{domain}")


@pytest.fixture
def control(emu: Any) -> Iterator[Control]:
    ctl = Control(emu)
    ctl.clear_faults()
    yield ctl
    ctl.clear_faults()


@pytest.fixture
def admin(emu: Any, admin_tokens: EmulatorTokens) -> GraphAccess:
    return GraphAccess(graph_client(emu, admin_tokens), can_write=True)


@pytest.fixture
def db(emu: Any) -> Any:
    """The emulator's SQLite connection, to compare results with the directory's own state."""
    return emu.app.extensions["emulator.store"].conn()
