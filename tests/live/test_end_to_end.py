"""Issue 15 end to end: the gateway served on loopback with its job consumer, change notifications on. A group
removal in the emulated tenant makes Graph post to /graph/notifications, the debounced live_sync round reads the
delta, and Adele's next /auth/verify is refused — with nobody calling anything in between."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.extensions import db
from core.models import Datasource, User
from emulator.server import EmulatorHandle
from jobs.queue import start_embedded_consumer, stop_embedded_consumer
from live.models import GraphSubscription, LiveAccess
from live.subscriptions import maintain
from live.sync import request_sync
from policies import service
from tests.conftest import ADMIN_EMAIL, LiveServer
from tests.live.conftest import control
from tests.o365_helpers import emulator_env
from tests.sso_helpers import microsoft_sign_in, stored_identity

ADELE = "adele.vance@contoso.example"
URL = {"X-Original-URL": "https://app.example.com/reports/q3", "X-Original-Method": "GET"}


@pytest.fixture
def store_backend() -> str:
    return "database"  # one job queue per test: the consumer runs in this process


@pytest.fixture
def app_env(sso_emulator: EmulatorHandle) -> dict[str, str]:
    return {**emulator_env(sso_emulator), "ALLOWED_REDIRECT_DOMAINS": ".example.com",
            "LIVE_DEBOUNCE_SECONDS": "0.5"}


@pytest.fixture
def consumer(app: Flask) -> Iterator[None]:
    start_embedded_consumer(app, workers=2)
    yield
    stop_embedded_consumer()


def _live(datasource: Datasource) -> LiveAccess:
    db.session.expire_all()
    return db.session.scalars(select(LiveAccess).where(LiveAccess.datasource_id == datasource.id)).one()


def _until(check, seconds: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_a_group_removal_in_entra_denies_the_next_request_through_notifications(
        app: Flask, contoso: Datasource, live_server: LiveServer, sso_emulator: EmulatorHandle,
        consumer: None) -> None:
    browser = app.test_client()
    assert microsoft_sign_in(browser, sso_emulator, "contoso", ADELE).status_code == 302
    group = stored_identity(browser)["groups"][0]
    service.save({"rules": [{"name": "Reports", "host": "app.example.com",
                             "criteria": {"groups_any": [{"id": group, "name": "Reports readers"}]}}]},
                 actor=ADMIN_EMAIL)
    app.config["PUBLIC_BASE_URL"] = live_server.url  # where Graph posts: this gateway on loopback
    db.session.add(LiveAccess(datasource_id=contoso.id, enabled=True, notifications=True))
    db.session.commit()
    maintain(contoso.id)
    live = _live(contoso)
    assert live.fallback_reason == "", live.fallback_reason
    assert db.session.scalar(select(db.func.count()).select_from(GraphSubscription).where(
        GraphSubscription.datasource_id == contoso.id, GraphSubscription.status == GraphSubscription.ACTIVE)) == 2
    request_sync(contoso.id, "first", delay=0)
    assert _until(lambda: _live(contoso).last_round_at is not None), "the first round ran"

    def verify(client: FlaskClient) -> int:
        return client.get("/auth/verify", headers=URL).status_code

    assert verify(browser) == 200
    adele = db.session.scalars(select(User).filter_by(email=ADELE)).one()
    control(sso_emulator, "DELETE", f"groups/{group}/members/{adele.object_id}")
    assert _until(lambda: verify(browser) == 403), "the next request after the round is refused"
    live = _live(contoso)
    assert live.notifications_received >= 1 and live.last_notification_at is not None
    assert live.lag_seconds is not None and live.lag_seconds < 30 and live.sessions_refreshed == 1
