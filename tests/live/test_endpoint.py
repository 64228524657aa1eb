"""The notification endpoint alone (issue 15, point 1 and Bad input): the handshake, genuine notifications asking
for one debounced round, and every forged, replayed, malformed or oversized post refused, recorded, never acted on;
a flood limited without holding back genuine notifications."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import Datasource, utcnow
from jobs.models import TaskRun
from live.models import GraphSubscription, LiveAccess, RefusedNotification
from tests.live.conftest import CLIENT_STATE, TENANT, unique_ip

Post = Callable[..., Any]


@pytest.fixture
def app_env(store_env: dict[str, str]) -> dict[str, str]:
    """No emulator (the endpoint never calls Graph); the shared state on the database or Redis: replay digests
    and the refusal budget (Flask-Limiter's storage) live there."""
    return store_env


@pytest.fixture(autouse=True)
def own_address(client: FlaskClient) -> None:
    """This test's posts come from an address of its own (the refusal budget may be in a shared Redis)."""
    client.environ_base["REMOTE_ADDR"] = unique_ip()


def _runs() -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(TaskRun).where(TaskRun.kind == "live_sync"))


def _records() -> list[tuple[str, int | None, int]]:
    db.session.expire_all()
    return [(r.reason, r.datasource_id, r.count)
            for r in db.session.scalars(db.select(RefusedNotification).order_by(RefusedNotification.id))]


@pytest.mark.parametrize("path", ["/graph/notifications", "/graph/lifecycle"])
def test_the_handshake_echoes_the_token_as_plain_text(client: FlaskClient, path: str) -> None:
    token = "Validation: Testing client application reachability for subscription Request-Id: 3f1c-9a"
    response = client.post(path, query_string={"validationToken": token},
                           headers={"Content-Type": "text/plain; charset=utf-8"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == token
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = client.post(path, query_string={"validationToken": "<script>alert(1)</script>"})
    assert html.mimetype == "text/plain"  # never echoed as HTML


def test_a_genuine_notification_is_recorded_and_asks_for_one_round(
        datasource: Datasource, subscription: GraphSubscription, make_item: Callable[..., dict],
        post_items: Post, live_of: Callable[[int], LiveAccess]) -> None:
    response = post_items(make_item("a"), make_item("b"))
    assert response.status_code == 202
    live = live_of(datasource.id)
    assert live.notifications_received == 2 and live.last_notification_at is not None
    assert live.sync_requested_at is not None and live.sync_reason == "notification"
    assert _runs() == 1
    db.session.refresh(subscription)
    assert subscription.last_notification_at is not None
    # a burst: more notifications while the round waits to start ask for nothing more
    for n in range(20):
        assert post_items(make_item(f"user-{n}")).status_code == 202
    assert _runs() == 1 and live_of(datasource.id).notifications_received == 22
    assert _records() == []


@pytest.mark.parametrize("forge, reason, attributed", [
    ({"clientState": "guessed"}, "client_state", True),
    ({"clientState": CLIENT_STATE[:-1]}, "client_state", True),
    ({"clientState": None}, "client_state", True),
    ({"subscriptionId": "6e0c3c8a-0000-4000-8000-000000000000"}, "unknown_subscription", False),
    ({"subscriptionId": None}, "malformed", False),
    ({"tenantId": "99999999-9999-4999-8999-999999999999"}, "tenant", True),
    ({"tenantId": None}, "tenant", True),
    ({"resource": "Groups/abc"}, "resource", True),
])
def test_forged_notifications_are_refused_recorded_and_never_acted_on(
        datasource: Datasource, make_item: Callable[..., dict], post_items: Post,
        live_of: Callable[[int], LiveAccess], caplog: pytest.LogCaptureFixture,
        forge: dict, reason: str, attributed: bool) -> None:
    caplog.set_level(logging.WARNING)
    response = post_items(make_item(**forge))
    assert response.status_code == 202  # the same answer as a genuine one: no oracle for guessing
    live = live_of(datasource.id)
    assert live.sync_requested_at is None and _runs() == 0
    assert live.notifications_received == 0 and live.last_notification_at is None
    assert live.notifications_refused == (1 if attributed else 0)
    assert _records() == [(reason, datasource.id if attributed else None, 1)]
    assert "refused change notification" in caplog.text
    assert CLIENT_STATE not in caplog.text and "guessed" not in caplog.text


def test_a_post_mixing_genuine_and_forged_items_acts_on_the_genuine_only(
        datasource: Datasource, make_item: Callable[..., dict], post_items: Post,
        live_of: Callable[[int], LiveAccess]) -> None:
    assert post_items(make_item("a"), make_item("b", clientState="nope")).status_code == 202
    live = live_of(datasource.id)
    assert (live.notifications_received, live.notifications_refused) == (1, 1)
    assert live.sync_requested_at is not None and _runs() == 1


@pytest.mark.parametrize("body, detail", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "value"),
    (b'{"value": {}}', "value"),
    (b'{"value": []}', "empty"),
    (b'{"value": [1]}', "not an object"),
    (b"", "not JSON"),
])
def test_malformed_bodies_are_refused_with_400_and_recorded(
        client: FlaskClient, datasource: Datasource, body: bytes, detail: str) -> None:
    response = client.post("/graph/notifications", data=body, content_type="application/json")
    assert response.status_code == 400
    assert _records() == [("malformed", None, 1)]
    assert detail in db.session.scalars(db.select(RefusedNotification.detail)).one()
    assert _runs() == 0


def test_text_that_is_not_valid_is_refused_and_recorded(client: FlaskClient) -> None:
    response = client.post("/graph/lifecycle", data=b'{"value": [{"subscriptionId": "\\ud800"}]}',
                           content_type="application/json")
    assert response.status_code == 422
    assert _records() == [("invalid_text", None, 1)]


def test_huge_bodies_are_refused_before_they_are_read(app: Flask, client: FlaskClient,
                                                      make_item: Callable[..., dict]) -> None:
    app.config["LIVE_NOTIFICATION_MAX_BYTES"] = 4096
    big = b'{"value": [' + b",".join([b'{"a": "' + b"x" * 100 + b'"}'] * 100) + b"]}"
    response = client.post("/graph/notifications", data=big, content_type="application/json")
    assert response.status_code == 413
    # without a Content-Length (chunked): cut off while read
    chunked = client.post("/graph/notifications", content_type="application/json",
                          headers={"Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input": io.BytesIO(big), "wsgi.input_terminated": True})
    assert chunked.status_code == 413
    assert [r[0] for r in _records()] == ["too_large", "too_large"]
    # the app-wide 2 MiB cap is not what refuses it: far smaller bodies already are
    assert app.config["MAX_CONTENT_LENGTH"] > 4096


def test_replays_before_the_round_starts_are_refused_then_a_repeat_counts_again(
        app: Flask, datasource: Datasource, make_item: Callable[..., dict], post_items: Post,
        live_of: Callable[[int], LiveAccess], store_backend: str, redis_prefix: str) -> None:
    from live import replay

    app.extensions.pop("live_seen_store", None)  # made again with this test's prefix
    assert isinstance(replay.store(), replay.RedisSeen if store_backend == "redis" else replay.DatabaseSeen)
    item = make_item("a")
    assert post_items(item).status_code == 202
    assert post_items(item).status_code == 202
    assert post_items(item).status_code == 202
    live = live_of(datasource.id)
    assert (live.notifications_received, live.notifications_replayed, live.notifications_refused) == (1, 2, 0)
    assert _records() == [("replayed", datasource.id, 1), ("replayed", datasource.id, 1)]
    # a queued round later than the debounce (a reconcile) does not make a repeat new: the first copy moved it
    assert live.sync_requested_at is not None
    # the round starts (claims the mark): the same item may now be a newer change of the same user
    live.sync_requested_at, live.last_round_started_at = None, utcnow()
    db.session.commit()
    assert post_items(item).status_code == 202
    live = live_of(datasource.id)
    assert live.notifications_received == 2 and live.sync_requested_at is not None and _runs() == 2
    # identical items in one post are one notification, not a replay
    assert post_items(make_item("b"), make_item("b")).status_code == 202
    assert live_of(datasource.id).notifications_received == 4
    assert live_of(datasource.id).notifications_replayed == 2


def test_a_flood_of_refused_posts_is_limited_while_graph_keeps_getting_through(
        app: Flask, datasource: Datasource, make_item: Callable[..., dict], post_items: Post,
        live_of: Callable[[int], LiveAccess]) -> None:
    from limits import parse

    from core.extensions import limiter

    app.config["LIVE_REFUSED_RATE_LIMIT"] = "5 per day"  # a fixed window: no minute boundary mid-test
    graph, attacker = unique_ip(), unique_ip()
    for n in range(30):  # genuine posts never spend the budget
        assert post_items(make_item(f"u{n}"), ip=graph).status_code == 202
    assert limiter.limiter.get_window_stats(parse("5 per day"), "live-refused", graph).remaining == 5
    # Another test's app starting meanwhile resets every Redis limit (tests/conftest.py), so the flood is posted
    # until it is limited rather than exactly five times.
    answers = [post_items(make_item(clientState=f"guess-{n}"), ip=attacker).status_code for n in range(40)]
    assert answers[:5] == [202] * 5 and 429 in answers
    accepted = answers.index(429)
    limited = post_items(make_item(), ip=attacker)
    assert limited.status_code in (202, 429)
    if limited.status_code == 429:
        assert int(limited.headers["Retry-After"]) >= 1
    refused = answers.count(202) + (limited.status_code == 202)
    assert len(_records()) == refused and refused < len(answers) + 1  # a limited post is not even read
    assert accepted >= 5
    assert post_items(make_item("after-the-flood"), ip=graph).status_code == 202
    live = live_of(datasource.id)
    assert live.notifications_received == 31 and live.notifications_refused == refused


def test_records_are_bounded(app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from live import refusals

    monkeypatch.setattr(refusals, "KEEP", 5)
    app.config["LIVE_REFUSED_RATE_LIMIT"] = "100 per minute"
    for _ in range(12):
        client.post("/graph/notifications", data=b"nope", content_type="application/json")
    assert len(_records()) == 5


def test_lifecycle_events_mark_the_subscription(
        app: Flask, datasource: Datasource, subscription: GraphSubscription, post_items: Post,
        live_of: Callable[[int], LiveAccess], monkeypatch: pytest.MonkeyPatch) -> None:
    from live import web

    maintained: list[int] = []
    # the Graph side is tests/live/test_subscriptions.py's
    monkeypatch.setattr(web, "maintain", lambda datasource_id, wait=0.0: maintained.append(datasource_id))

    def event(name: str, **fields: Any) -> dict:
        return {"subscriptionId": subscription.subscription_id, "subscriptionExpirationDateTime":
                "2026-12-31T11:00:00.0000000+00:00", "tenantId": TENANT, "clientState": CLIENT_STATE,
                "lifecycleEvent": name, **fields}

    response = post_items(event("reauthorizationRequired"), path="/graph/lifecycle")
    assert response.status_code == 202
    response.close()  # the work after the answer
    db.session.refresh(subscription)
    assert subscription.status == GraphSubscription.REAUTHORIZE
    assert subscription.last_lifecycle_event == "reauthorizationRequired"
    assert maintained == [datasource.id]
    post_items(event("missed"), path="/graph/lifecycle").close()
    live = live_of(datasource.id)
    assert live.missed_at is not None and live.sync_reason == "missed" and _runs() == 1
    post_items(event("subscriptionRemoved"), path="/graph/lifecycle").close()
    db.session.refresh(subscription)
    assert subscription.status == GraphSubscription.REMOVED
    # forged lifecycle events change nothing
    before = len(maintained)
    post_items(event("subscriptionRemoved", clientState="x"), event("bogus"), path="/graph/lifecycle").close()
    assert len(maintained) == before
    assert [r[0] for r in _records()] == ["client_state", "malformed"]


def test_live_access_off_means_notifications_are_not_acted_on(
        datasource: Datasource, make_item: Callable[..., dict], post_items: Post,
        live_of: Callable[[int], LiveAccess]) -> None:
    live = live_of(datasource.id)
    live.enabled = False
    db.session.commit()
    assert post_items(make_item()).status_code == 202
    live = live_of(datasource.id)
    assert live.sync_requested_at is None and live.notifications_received == 0 and _records() == []


def test_a_burst_of_10000_notifications_costs_one_round(
        datasource: Datasource, make_item: Callable[..., dict], post_items: Post,
        live_of: Callable[[int], LiveAccess], capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    slowest = 0.0
    for batch in range(100):  # Graph's posts of 100 (the emulator's batch size), each user changed once
        sent = time.perf_counter()
        assert post_items(*(make_item(f"user-{batch}-{n}") for n in range(100))).status_code == 202
        slowest = max(slowest, time.perf_counter() - sent)
    live = live_of(datasource.id)
    assert live.notifications_received == 10_000 and live.notifications_replayed == 0
    assert _runs() == 1 and _records() == []
    with capsys.disabled():
        print(f"\n10,000 notifications in 100 posts: {time.perf_counter() - started:.2f} s, slowest post "
              f"{slowest * 1000:.0f} ms, 1 round queued")


def test_items_are_counted_for_prometheus(client: FlaskClient, datasource: Datasource,
                                          make_item: Callable[..., dict], post_items: Post) -> None:
    from prometheus_client import REGISTRY

    def count(kind: str, outcome: str) -> float:
        return REGISTRY.get_sample_value("gateway_graph_notifications_total", {"kind": kind, "outcome": outcome}) or 0

    before = {key: count(*key) for key in (("change", "accepted"), ("change", "client_state"),
                                           ("change", "malformed"), ("lifecycle", "unknown_subscription"))}
    post_items(make_item("a"), make_item("b"), make_item("c", clientState="forged"))
    client.post("/graph/notifications", data=b"{", content_type="application/json")
    post_items({"subscriptionId": "nope", "lifecycleEvent": "missed"}, path="/graph/lifecycle")
    assert {key: count(*key) - value for key, value in before.items()} == {
        ("change", "accepted"): 2, ("change", "client_state"): 1, ("change", "malformed"): 1,
        ("lifecycle", "unknown_subscription"): 1}


def test_a_body_declared_as_text_gets_the_same_text_checks(client: FlaskClient, datasource: Datasource) -> None:
    """The app's input check reads JSON only when it is declared JSON: the endpoint parses any body, so it checks
    too (a lone surrogate would otherwise reach the database)."""
    for body in (b'{"value": [{"subscriptionId": "\\ud800", "clientState": "x"}]}',
                 b'{"value": [{"subscriptionId": "a\\u0000b"}]}', b"[" * 100 + b"]" * 100):
        response = client.post("/graph/notifications", data=body, content_type="text/plain")
        assert response.status_code == 422
    assert [r[0] for r in _records()] == ["invalid_text"] * 3


def test_a_lifecycle_event_posted_to_the_change_url_is_handled_as_one(
        datasource: Datasource, subscription: GraphSubscription, make_item: Callable[..., dict], post_items: Post,
        live_of: Callable[[int], LiveAccess], monkeypatch: pytest.MonkeyPatch) -> None:
    from live import web

    monkeypatch.setattr(web, "maintain", lambda datasource_id, wait=0.0: None)
    event = {"subscriptionId": subscription.subscription_id, "tenantId": TENANT, "clientState": CLIENT_STATE,
             "subscriptionExpirationDateTime": "2026-12-31T11:00:00.0000000+00:00", "lifecycleEvent": "missed"}
    post_items(make_item("a"), event).close()
    live = live_of(datasource.id)
    assert live.missed_at is not None and live.notifications_received == 1
    db.session.refresh(subscription)
    assert subscription.last_lifecycle_event == "missed"
