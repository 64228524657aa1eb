"""office365.subscriptions against the tenant emulator: create (with Graph's handshake against a small local
subscriber), renew, move, reauthorize, list and delete; Graph's refusals as typed errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from office365 import subscriptions
from office365.errors import InvalidRequest, NotFound
from office365.graph import GraphClient
from tests.office365.emulator_support import EmulatorTokens, graph_client


class _Subscriber(BaseHTTPRequestHandler):
    """Answers Graph's validation handshake (or refuses it when the path says so)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        query = parse_qs(urlsplit(self.path).query)
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        token = query.get("validationToken", [None])[0]
        if token is None or "refuse" in self.path:
            self.send_response(202 if token is None else 400)
            self.end_headers()
            return
        body = token.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def subscriber() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Subscriber)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def client(emu: Any, admin_tokens: EmulatorTokens) -> Iterator[GraphClient]:
    graph = graph_client(emu, admin_tokens)
    yield graph
    for sub in subscriptions.list_all(graph):
        subscriptions.delete(graph, sub.id)


def _soon(days: float = 20) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def test_create_renew_move_reauthorize_list_and_delete(client: GraphClient, subscriber: str) -> None:
    sub = subscriptions.create(client, resource="users", notification_url=f"{subscriber}/n",
                               lifecycle_url=f"{subscriber}/l", client_state="s" * 128, expires_at=_soon())
    assert sub.resource == "users" and sub.change_type == "updated,deleted"
    assert sub.notification_url == f"{subscriber}/n" and sub.lifecycle_url == f"{subscriber}/l"
    assert abs((sub.expires_at - _soon()).total_seconds()) < 60
    renewed = subscriptions.renew(client, sub.id, _soon(25))
    assert renewed.id == sub.id and renewed.expires_at > sub.expires_at
    moved = subscriptions.renew(client, sub.id, _soon(25), notification_url=f"{subscriber}/elsewhere")
    assert moved.notification_url == f"{subscriber}/elsewhere"
    subscriptions.reauthorize(client, sub.id)
    groups = subscriptions.create(client, resource="groups", notification_url=f"{subscriber}/n",
                                  lifecycle_url=f"{subscriber}/l", client_state="t", expires_at=_soon())
    assert {s.id for s in subscriptions.list_all(client)} == {sub.id, groups.id}
    subscriptions.delete(client, sub.id)
    with pytest.raises(NotFound):
        subscriptions.delete(client, sub.id)
    with pytest.raises(NotFound):
        subscriptions.renew(client, sub.id, _soon())
    assert [s.id for s in subscriptions.list_all(client)] == [groups.id]


def test_graph_s_refusals_are_typed_errors_in_words(client: GraphClient, subscriber: str) -> None:
    with pytest.raises(InvalidRequest, match="41760 minutes"):  # past Graph's maximum lifetime
        subscriptions.create(client, resource="users", notification_url=f"{subscriber}/n",
                             lifecycle_url=f"{subscriber}/l", client_state="s",
                             expires_at=datetime.now(UTC) + subscriptions.MAX_LIFETIME + timedelta(minutes=5))
    with pytest.raises(InvalidRequest, match="validation request failed"):  # the subscriber refused the handshake
        subscriptions.create(client, resource="groups", notification_url=f"{subscriber}/refuse",
                             lifecycle_url=f"{subscriber}/l", client_state="s", expires_at=_soon())
    with pytest.raises(InvalidRequest, match="https"):
        subscriptions.create(client, resource="users", notification_url="http://gateway.example.com/n",
                             lifecycle_url=f"{subscriber}/l", client_state="s", expires_at=_soon())
    with pytest.raises(InvalidRequest):  # refused before sending
        subscriptions.create(client, resource="drives", notification_url=f"{subscriber}/n",
                             lifecycle_url=f"{subscriber}/l", client_state="s", expires_at=_soon())
    with pytest.raises(InvalidRequest):
        subscriptions.create(client, resource="users", notification_url=f"{subscriber}/n",
                             lifecycle_url=f"{subscriber}/l", client_state="s" * 129, expires_at=_soon())
    with pytest.raises(InvalidRequest):
        subscriptions.delete(client, "../users")
    assert subscriptions.list_all(client) == []


@pytest.mark.parametrize("text, expected", [
    ("2026-12-31T11:00:00.0000000Z", datetime(2026, 12, 31, 11, tzinfo=UTC)),
    ("2026-12-31T11:00:00.9356913+00:00", datetime(2026, 12, 31, 11, 0, 0, 935691, tzinfo=UTC)),
    ("2026-12-31T13:00:00+02:00", datetime(2026, 12, 31, 11, tzinfo=UTC)),
    ("2026-12-31T11:00:00", datetime(2026, 12, 31, 11, tzinfo=UTC)),
    ("not a time", None), (None, None), ("2026-12-31T11:00:00.abcZ", None),
])
def test_graph_times(text: Any, expected: datetime | None) -> None:
    assert subscriptions.parse_graph_time(text) == expected
    if expected is not None:
        assert subscriptions.parse_graph_time(subscriptions.graph_time(expected)) == expected
