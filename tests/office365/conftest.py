"""Fixtures for the Graph client tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from office365.graph import GraphClient, StaticTokenSource, Timeouts
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
