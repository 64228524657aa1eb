"""Graph requests reach the metrics through office365's observer hook (office365/ imports no metrics library):
each HTTP request by operation and status, the 429s, the retries and the time; a refused refresh is a failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from observability import metrics
from office365 import observe
from office365.graph import GraphClient, StaticTokenSource, Timeouts
from tests.office365.fakes import FAST, ScriptedGraph, Sleeps, graph_error, graph_json

USER_ID = "0b6f3c1e-8a4d-4c9e-9f1a-2d3e4f5a6b7c"


@pytest.fixture
def graph() -> Iterator[ScriptedGraph]:
    server = ScriptedGraph()
    yield server
    server.stop()


def test_operation_names_hide_ids_and_keys() -> None:
    assert observe.operation_name("GET", f"/users/{USER_ID}/memberOf") == "GET /users/{id}/memberOf"
    assert observe.operation_name("POST", "/groups/abc-1/members/$ref?x=1") == "POST /groups/abc-1/members/$ref"
    assert observe.operation_name("GET", "/users/adele.vance@contoso.example") == "GET /users/{id}"
    assert observe.operation_name("GET", "/users/delta") == "GET /users/delta"


def _count(counter, *labels: str) -> float:  # type: ignore[no-untyped-def]
    return counter.labels(*labels)._value.get()


def test_graph_requests_throttles_and_retries_are_counted(graph: ScriptedGraph) -> None:
    observe.on_graph_request(metrics.graph_request)  # what create_app wires
    operation = "GET /users/{id}"
    before = (_count(metrics.GRAPH_REQUESTS, operation, "429"), _count(metrics.GRAPH_REQUESTS, operation, "200"),
              _count(metrics.GRAPH_THROTTLED, operation), _count(metrics.GRAPH_RETRIES, operation))
    graph.script(graph_error(429, "TooManyRequests", "Slow down.", {"Retry-After": "0.01"}),
                 graph_json({"id": USER_ID}))
    client = GraphClient(graph.base_url, StaticTokenSource("tok-1"), retry=FAST, sleep=Sleeps(),
                         timeouts=Timeouts(connect=1.0, read=1.0))
    assert client.get(f"/users/{USER_ID}").body["id"] == USER_ID
    after = (_count(metrics.GRAPH_REQUESTS, operation, "429"), _count(metrics.GRAPH_REQUESTS, operation, "200"),
             _count(metrics.GRAPH_THROTTLED, operation), _count(metrics.GRAPH_RETRIES, operation))
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1, 1]
