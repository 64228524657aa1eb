"""Administration > a data source > Live access (issue 15, point 5): the switch, and the state in plain words:
subscriptions and their expiry, last notification, lag, fallback polling on or off and why, refused notifications,
sessions ended and refreshed. Turning it on creates the subscriptions at the tenant emulator (its handshake reaches
the gateway on a live server), off deletes them; every change is audited."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import AuditEvent, Datasource, utcnow
from emulator.server import EmulatorHandle
from live.models import GraphSubscription, LiveAccess, RefusedNotification
from tests.conftest import LiveServer, csrf_token, make_user, sign_in
from tests.o365_helpers import emulator_env
from tests.o365_ops_helpers import Tenant, authorized_datasource, page_text


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(emulator)


@pytest.fixture
def ds(app: Flask, admin_client: FlaskClient, emulator: EmulatorHandle) -> Iterator[Datasource]:
    yield authorized_datasource(admin_client, emulator, app)


def _save(client: FlaskClient, ds: Datasource, **fields: str) -> str:
    token = csrf_token(client, f"/admin/datasources/{ds.id}")
    data = {"live-csrf_token": token, "live-poll_seconds": "60", **{f"live-{k}": v for k, v in fields.items()}}
    return page_text(client.post(f"/admin/datasources/{ds.id}/live-access", data=data, follow_redirects=True))


def _words(page: str) -> str:
    """The page's words without markup (icons and emphasis split sentences otherwise)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))


def _subs(tenant: Tenant) -> list[dict]:
    return tenant.control("GET", "subscriptions").json()["subscriptions"]


def test_turning_live_access_on_and_off(app: Flask, admin_client: FlaskClient, ds: Datasource, tenant: Tenant,
                                        live_server: LiveServer) -> None:
    page = page_text(admin_client.get(f"/admin/datasources/{ds.id}"))
    assert 'id="live-access"' in page and 'id="live-state">Off' in page
    assert "Live access is off: changes in Entra reach sessions at the next user import." in page
    app.config["PUBLIC_BASE_URL"] = live_server.url
    page = _save(admin_client, ds, enabled="y", notifications="y")
    assert "Live access is on: Microsoft Graph reports changes to users and groups as they happen." in page
    assert "Fallback polling is off. Change notifications are healthy" in _words(page)
    assert len(_subs(tenant)) == 2
    assert '<table class="table table-sm small align-middle" id="live-subscriptions">' in page
    for row in db.session.scalars(db.select(GraphSubscription)):
        assert row.subscription_id in page and row.resource in page
    settings = db.session.scalars(db.select(AuditEvent).filter_by(action="live.settings")).one()
    assert settings.detail["before"] == {"enabled": False}
    assert settings.detail["after"] == {"enabled": True, "notifications": True, "poll_seconds": 60}
    assert settings.actor == "admin@example.com"
    # notifications off: the subscriptions go, a poll every 30 s instead
    page = _save(admin_client, ds, enabled="y", poll_seconds="30")
    assert "without change notifications: the gateway asks Graph for changes every 30 s" in page
    assert "Fallback polling is on. Change notifications are turned off" in _words(page)
    assert _subs(tenant) == []
    # all off
    page = _save(admin_client, ds, poll_seconds="30")
    assert "Live access is off." in page and 'id="live-state">Off' in page
    live = db.session.scalars(db.select(LiveAccess)).one()
    assert (live.enabled, live.notifications, live.poll_seconds) == (False, False, 30)
    assert len(db.session.scalars(db.select(AuditEvent).filter_by(action="live.settings")).all()) == 3


def test_without_a_public_https_url_the_page_says_why_polling_is_on(
        app: Flask, admin_client: FlaskClient, ds: Datasource, tenant: Tenant) -> None:
    app.config["PUBLIC_BASE_URL"] = None
    page = _save(admin_client, ds, enabled="y", notifications="y")
    assert ("Live access is on, but change notifications cannot work yet: PUBLIC_BASE_URL is not set: Microsoft "
            "Graph cannot reach the gateway.") in page
    assert "Fallback polling is on. PUBLIC_BASE_URL is not set" in _words(page)
    assert "every 60 s meanwhile" in page
    assert _subs(tenant) == []
    app.config["PUBLIC_BASE_URL"] = "http://sso.example.com"
    token = csrf_token(admin_client, f"/admin/datasources/{ds.id}")
    page = page_text(admin_client.post(f"/admin/datasources/{ds.id}/live-access/check",
                                       data={"live-check-csrf_token": token}, follow_redirects=True))
    assert "Change notifications are not working: PUBLIC_BASE_URL (http://sso.example.com) is not an https URL" in page
    assert db.session.scalars(db.select(AuditEvent).filter_by(action="live.check")).one().outcome == "success"


def test_a_poll_interval_out_of_range_is_said_beside_the_field(admin_client: FlaskClient, ds: Datasource) -> None:
    token = csrf_token(admin_client, f"/admin/datasources/{ds.id}")
    response = admin_client.post(f"/admin/datasources/{ds.id}/live-access", data={
        "live-csrf_token": token, "live-enabled": "y", "live-poll_seconds": "5"})
    assert response.status_code == 422
    page = page_text(response)
    assert 'id="live-poll_seconds-error">Use 15 to 3600 seconds.' in page and 'aria-invalid="true"' in page
    assert db.session.scalars(db.select(LiveAccess)).first() is None
    for bad in ("", "６０", "-1"):
        response = admin_client.post(f"/admin/datasources/{ds.id}/live-access", data={
            "live-csrf_token": token, "live-poll_seconds": bad})
        assert response.status_code == 422


def test_the_state_in_plain_words(admin_client: FlaskClient, ds: Datasource) -> None:
    now = utcnow()
    db.session.add(LiveAccess(datasource_id=ds.id, enabled=True, notifications=True, last_notification_at=now,
                              notifications_received=1234, notifications_refused=3, notifications_replayed=2,
                              lag_seconds=4.25, last_round_at=now, sessions_ended=5, sessions_refreshed=7,
                              fallback_reason="Microsoft reported missed notifications at 2026-12-04 21:00 UTC: a "
                                              "delta round catches up."))
    db.session.add(RefusedNotification(datasource_id=ds.id, reason="client_state", subscription_id="sub-1",
                                       client_ip="198.51.100.66"))
    db.session.add(RefusedNotification(datasource_id=None, reason="malformed", detail="the body is not JSON",
                                       client_ip="198.51.100.67", count=1))
    db.session.commit()
    page = page_text(admin_client.get(f"/admin/datasources/{ds.id}"))
    assert "Fallback polling is on. Microsoft reported missed notifications" in _words(page)
    assert "1,234" in page and "4.2 s" in page
    assert 'id="live-refused">3<' in page and 'id="live-replayed">2<' in page
    assert "wrong clientState" in page and "198.51.100.66" in page
    assert "malformed: the body is not JSON" in page and "1 refused item named no data source" in page
    alone = page_text(admin_client.get(f"/admin/datasources/{ds.id}/live-access"))
    assert "Live access: Contoso" in alone and "1,234" in alone


def test_only_the_connection_administrators_see_and_change_it(app: Flask, client: FlaskClient,
                                                              ds: Datasource) -> None:
    ds = db.session.get(Datasource, ds.id)
    make_user("manager@example.com", "manager-password-123", "Manage datasources")
    ds.user_users = ["manager@example.com"]
    ds.admin_users = ["admin@example.com"]
    db.session.commit()
    client.post("/logout", data={"csrf_token": csrf_token(client, "/sessions")})
    sign_in(client, "manager@example.com", "manager-password-123")
    page = page_text(client.get(f"/admin/datasources/{ds.id}"))
    assert 'id="live-access"' not in page  # a Connection user sees the data source, not its live access
    assert client.get(f"/admin/datasources/{ds.id}/live-access").status_code == 403
