"""Graph subscriptions end to end (issue 15, point 1): `maintain` creates them at the tenant emulator (whose
handshake reaches the gateway on a live server), renews, re-creates and deletes them, answers lifecycle events, and
says in `fallback_reason` why polling is on; the emulator's notifications reach the endpoint and ask for a round."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.crypto import secret_box
from core.extensions import db
from core.models import AuditEvent, Datasource, utcnow
from emulator.server import EmulatorHandle
from jobs.models import TaskRun
from live.models import GraphSubscription, LiveAccess
from live.subscriptions import LIFETIME, maintain, remove_all
from tests.conftest import LiveServer, csrf_token
from tests.o365_helpers import emulator_env
from tests.o365_ops_helpers import Tenant, authorized_datasource


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(emulator)


@pytest.fixture
def live_ds(app: Flask, admin_client: FlaskClient, emulator: EmulatorHandle, tenant: Tenant,
            live_server: LiveServer) -> Iterator[Datasource]:
    """An authorized datasource with live access on; the gateway's public URL is the live server."""
    ds = authorized_datasource(admin_client, emulator, app)
    app.config["PUBLIC_BASE_URL"] = live_server.url
    db.session.add(LiveAccess(datasource_id=ds.id, enabled=True, notifications=True))
    db.session.commit()
    tenant.control("POST", "notifications/settings", {"retry_base": 0.05, "retry_max": 0.2})
    yield ds


def _rows(ds: Datasource) -> dict[str, GraphSubscription]:
    db.session.expire_all()
    return {row.resource: row for row in db.session.scalars(db.select(GraphSubscription).filter_by(
        datasource_id=ds.id))}


def _at_graph(tenant: Tenant) -> dict[str, dict]:
    return {s["id"]: s for s in tenant.control("GET", "subscriptions").json()["subscriptions"]}


def _wait(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
        db.session.expire_all()


def test_maintain_creates_both_subscriptions_with_their_secret_encrypted(
        app: Flask, live_ds: Datasource, tenant: Tenant, live_of: Callable[[int], LiveAccess],
        live_server: LiveServer) -> None:
    maintain(live_ds.id)
    rows = _rows(live_ds)
    assert set(rows) == {"users", "groups"}
    graph = _at_graph(tenant)
    for row in rows.values():
        sub = graph[row.subscription_id]
        assert sub["changeType"] == "updated,deleted" and sub["resource"] == row.resource
        assert sub["notificationUrl"] == f"{live_server.url}/graph/notifications"
        assert sub["lifecycleNotificationUrl"] == f"{live_server.url}/graph/lifecycle"
        assert sub["clientState"] not in row.client_state  # stored encrypted ...
        assert secret_box().decrypt(row.client_state) == sub["clientState"]  # ... and the same secret
        assert len(sub["clientState"]) >= 32
        assert row.expires_at - utcnow() > LIFETIME - timedelta(minutes=5)
        assert row.expires_at - utcnow() <= timedelta(minutes=41760)
    assert len({secret_box().decrypt(r.client_state) for r in rows.values()}) == 2  # one secret each
    live = live_of(live_ds.id)
    assert live.fallback_reason == "" and live.maintaining_until is None
    assert live.sync_reason == "subscribed"  # what changed before the subscriptions existed is read once
    report = tenant.control("GET", "notifications").json()
    assert report["stats"]["validations"] == 4 and report["stats"].get("validation_failures", 0) == 0
    actions = set(db.session.scalars(db.select(AuditEvent.action)))
    assert "live.subscription_create" in actions
    maintain(live_ds.id)  # nothing due: nothing changes
    assert {r.subscription_id for r in _rows(live_ds).values()} == {r.subscription_id for r in rows.values()}


def test_a_change_in_entra_reaches_the_endpoint_and_asks_for_a_round(
        live_ds: Datasource, tenant: Tenant, live_of: Callable[[int], LiveAccess]) -> None:
    maintain(live_ds.id)
    live = live_of(live_ds.id)
    live.sync_requested_at = None  # the round asked for at subscription has started
    db.session.commit()
    upn = tenant.upn("account_enabled = 1 AND user_principal_name NOT LIKE 'admin@%'")
    tenant.control("PATCH", f"users/{upn}", {"accountEnabled": False})
    group = tenant.one("SELECT group_id FROM memberships WHERE relation = 'member' LIMIT 1")
    member = tenant.one("SELECT member_id FROM memberships WHERE group_id = ? AND relation = 'member'", group)
    tenant.control("DELETE", f"groups/{group}/members/{member}")
    assert tenant.control("POST", "notifications/wait", {"timeout": 20}).json()["idle"]
    _wait(lambda: live_of(live_ds.id).notifications_received >= 2)
    live = live_of(live_ds.id)
    assert live.sync_requested_at is not None and live.sync_reason == "notification"
    assert live.notifications_refused == 0 and live.last_notification_at is not None
    rows = _rows(live_ds)
    assert rows["users"].last_notification_at is not None and rows["groups"].last_notification_at is not None
    runs = db.session.scalar(db.select(db.func.count()).select_from(TaskRun).where(TaskRun.kind == "live_sync"))
    assert runs in (2, 3)  # one at subscription, one for this burst (two posts racing may both queue one)


def test_without_a_reachable_public_url_polling_is_on_and_says_why(
        app: Flask, live_ds: Datasource, tenant: Tenant, live_of: Callable[[int], LiveAccess]) -> None:
    app.config["PUBLIC_BASE_URL"] = None
    maintain(live_ds.id)
    assert live_of(live_ds.id).fallback_reason == ("PUBLIC_BASE_URL is not set: Microsoft Graph cannot reach the "
                                                   "gateway.")
    assert _rows(live_ds) == {} and _at_graph(tenant) == {}
    assert live_of(live_ds.id).sync_reason == "poll"  # polling starts at once, not after a queued reconcile
    app.config["PUBLIC_BASE_URL"] = "http://sso.example.com"
    maintain(live_ds.id)
    assert "is not an https URL" in live_of(live_ds.id).fallback_reason
    assert _rows(live_ds) == {}


def test_renewal_and_a_moved_public_url(app: Flask, live_ds: Datasource, tenant: Tenant,
                                        live_of: Callable[[int], LiveAccess], live_server: LiveServer) -> None:
    maintain(live_ds.id)
    rows = _rows(live_ds)
    users = rows["users"]
    users.expires_at = utcnow() + timedelta(days=3)  # less than a third of the lifetime left
    db.session.commit()
    maintain(live_ds.id)
    renewed = _rows(live_ds)["users"]
    assert renewed.subscription_id == users.subscription_id and renewed.renewed_at is not None
    assert renewed.expires_at - utcnow() > LIFETIME - timedelta(minutes=5)
    graph_expiry = _at_graph(tenant)[users.subscription_id]["expirationDateTime"]
    assert graph_expiry.startswith(f"{renewed.expires_at:%Y-%m-%dT%H:%M}")
    # PUBLIC_BASE_URL moved (another port, same loopback): both subscriptions follow, validated again
    moved = LiveServer(app)
    try:
        app.config["PUBLIC_BASE_URL"] = moved.url
        maintain(live_ds.id)
        graph = _at_graph(tenant)
        assert {graph[r.subscription_id]["notificationUrl"] for r in _rows(live_ds).values()} == {
            f"{moved.url}/graph/notifications"}
        assert {r.subscription_id for r in _rows(live_ds).values()} == {r.subscription_id for r in rows.values()}
    finally:
        moved.stop()
    assert live_of(live_ds.id).fallback_reason == ""


def test_expired_or_vanished_subscriptions_are_created_again_and_a_round_catches_up(
        live_ds: Datasource, tenant: Tenant, live_of: Callable[[int], LiveAccess]) -> None:
    maintain(live_ds.id)
    rows = _rows(live_ds)
    # Graph let the users subscription expire (nobody renewed it in time): ours says so too
    tenant.control("POST", f"subscriptions/{rows['users'].subscription_id}/expire")
    rows["users"].expires_at = utcnow() - timedelta(minutes=1)
    # the groups one vanished at Graph while ours still looks fine (the renewal finds it gone)
    tenant.control("POST", f"subscriptions/{rows['groups'].subscription_id}/expire")
    rows["groups"].expires_at = utcnow() + timedelta(days=2)
    db.session.commit()
    live = live_of(live_ds.id)
    live.sync_requested_at = None
    db.session.commit()
    maintain(live_ds.id)
    again = _rows(live_ds)
    assert set(again) == {"users", "groups"}
    assert again["users"].subscription_id != rows["users"].subscription_id
    assert again["groups"].subscription_id != rows["groups"].subscription_id
    assert set(_at_graph(tenant)) >= {again["users"].subscription_id, again["groups"].subscription_id}
    live = live_of(live_ds.id)
    assert live.fallback_reason == "" and live.sync_reason == "subscribed"
    gone = db.session.scalars(db.select(AuditEvent).filter_by(action="live.subscription_gone")).all()
    assert {e.detail["resource"] for e in gone} == {"users", "groups"}


def test_graph_refusing_the_subscription_puts_polling_on_with_graph_s_words(
        live_ds: Datasource, tenant: Tenant, live_of: Callable[[int], LiveAccess]) -> None:
    tenant.fault(kind="error", scope="graph", path="/v1.0/subscriptions", method="POST", status=403,
                 code="ExtensionError", message="Subscription quota exceeded.", count=10)
    maintain(live_ds.id)
    reason = live_of(live_ds.id).fallback_reason
    assert reason.startswith("Graph refused the users subscription:") and "groups subscription" in reason
    assert _rows(live_ds) == {}
    tenant.control("DELETE", "faults")
    maintain(live_ds.id)
    assert live_of(live_ds.id).fallback_reason == "" and set(_rows(live_ds)) == {"users", "groups"}


def test_lifecycle_events_from_graph_are_answered(live_ds: Datasource, tenant: Tenant,
                                                  live_of: Callable[[int], LiveAccess]) -> None:
    maintain(live_ds.id)
    rows = _rows(live_ds)
    users, groups = rows["users"].subscription_id, rows["groups"].subscription_id
    # reauthorizationRequired with delivery paused: the gateway reauthorizes, delivery resumes
    tenant.control("POST", f"subscriptions/{users}/lifecycle", {"event": "reauthorizationRequired", "pause": True})
    assert _at_graph(tenant)[users]["paused"]
    _wait(lambda: not _at_graph(tenant)[users]["paused"])
    assert not _at_graph(tenant)[users]["reauthorizationRequired"]
    _wait(lambda: _rows(live_ds)["users"].status == GraphSubscription.ACTIVE
          and _rows(live_ds)["users"].last_lifecycle_event == "reauthorizationRequired")
    # subscriptionRemoved: created again, and a round reads what was missed meanwhile
    live = live_of(live_ds.id)
    live.sync_requested_at, live.sync_reason = None, ""  # the first maintain's "subscribed" must not count here
    db.session.commit()
    tenant.control("POST", f"subscriptions/{groups}/lifecycle", {"event": "subscriptionRemoved"})
    _wait(lambda: "groups" in _rows(live_ds) and _rows(live_ds)["groups"].subscription_id != groups)
    assert _rows(live_ds)["groups"].subscription_id in _at_graph(tenant)
    _wait(lambda: live_of(live_ds.id).sync_reason == "subscribed" and live_of(live_ds.id).maintaining_until is None)
    # missed: a round, and polling until one finished
    live = live_of(live_ds.id)
    live.sync_requested_at = None
    db.session.commit()
    tenant.control("POST", f"subscriptions/{users}/lifecycle", {"event": "missed"})
    _wait(lambda: live_of(live_ds.id).missed_at is not None and live_of(live_ds.id).maintaining_until is None
          and "missed notifications" in live_of(live_ds.id).fallback_reason)
    assert live_of(live_ds.id).sync_reason == "missed"
    live = live_of(live_ds.id)
    live.last_round_at = utcnow()  # the round finished
    db.session.commit()
    maintain(live_ds.id)
    assert live_of(live_ds.id).fallback_reason == ""


def test_turning_live_access_off_deletes_them_at_graph(live_ds: Datasource, tenant: Tenant,
                                                       live_of: Callable[[int], LiveAccess]) -> None:
    maintain(live_ds.id)
    assert len(_at_graph(tenant)) == 2
    live = live_of(live_ds.id)
    live.notifications = False
    db.session.commit()
    maintain(live_ds.id)
    assert _rows(live_ds) == {} and _at_graph(tenant) == {}
    assert live_of(live_ds.id).fallback_reason == ""
    deletes = db.session.scalars(db.select(AuditEvent).filter_by(action="live.subscription_delete")).all()
    assert len(deletes) == 2 and {e.outcome for e in deletes} == {"success"}


def test_remove_all_reports_what_graph_could_not_be_told(live_ds: Datasource, tenant: Tenant) -> None:
    maintain(live_ds.id)
    tenant.fault(kind="error", scope="graph", path="/v1.0/subscriptions/", method="DELETE", status=503,
                 count=100)
    problems = remove_all(live_ds.id)
    assert len(problems) == 2 and all("could not be deleted at Microsoft" in p for p in problems)
    assert all("ends by itself on" in p for p in problems)
    assert _rows(live_ds) == {}  # rows removed all the same
    failures = db.session.scalars(db.select(AuditEvent).filter_by(action="live.subscription_delete",
                                                                  outcome="failure")).all()
    assert len(failures) == 2


def test_two_processes_do_not_maintain_one_datasource_at_once(live_ds: Datasource, tenant: Tenant,
                                                              live_of: Callable[[int], LiveAccess]) -> None:
    live = live_of(live_ds.id)
    live.maintaining_until = utcnow() + timedelta(minutes=1)  # another process holds the lease
    db.session.commit()
    maintain(live_ds.id)
    assert _rows(live_ds) == {} and _at_graph(tenant) == {}
    live = live_of(live_ds.id)
    live.maintaining_until = utcnow() - timedelta(seconds=1)  # it died: its lease ran out
    db.session.commit()
    maintain(live_ds.id)
    assert set(_rows(live_ds)) == {"users", "groups"}


def test_deleting_the_datasource_deletes_its_subscriptions_at_graph(
        admin_client: FlaskClient, live_ds: Datasource, tenant: Tenant) -> None:
    maintain(live_ds.id)
    assert len(_at_graph(tenant)) == 2
    page = admin_client.get(f"/admin/datasources/{live_ds.id}/delete").get_data(as_text=True)
    assert "change-notification subscriptions are deleted at Microsoft too" in page
    token = csrf_token(admin_client, f"/admin/datasources/{live_ds.id}/delete")
    response = admin_client.post(f"/admin/datasources/{live_ds.id}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    assert _at_graph(tenant) == {}
    db.session.expire_all()
    assert db.session.scalar(db.select(db.func.count()).select_from(GraphSubscription)) == 0


def test_the_scheduler_tick_keeps_them(live_ds: Datasource, tenant: Tenant,
                                       live_of: Callable[[int], LiveAccess]) -> None:
    from jobs.scheduler import tick

    tick()
    assert set(_rows(live_ds)) == {"users", "groups"} and len(_at_graph(tenant)) == 2
    live = live_of(live_ds.id)
    live.enabled = False
    db.session.commit()
    tick()  # live access off: the tick deletes what is left
    assert _rows(live_ds) == {} and _at_graph(tenant) == {}


def test_a_tenant_change_lets_the_old_tenant_s_subscriptions_go(live_ds: Datasource, tenant: Tenant) -> None:
    from datasources import tenant_change
    from live.subscriptions import forget_on_tenant_change

    assert forget_on_tenant_change in tenant_change._listeners  # registered by live.init_app
    maintain(live_ds.id)
    old = {row.subscription_id for row in _rows(live_ds).values()}
    ds = db.session.get(Datasource, live_ds.id)
    effect = forget_on_tenant_change(ds, ds.tenant_id)
    assert set(effect.details["graph_subscriptions_forgotten"]) == old
    assert "created in this tenant within a minute" in effect.notice
    db.session.commit()  # the change's transaction
    assert _rows(live_ds) == {}
    maintain(live_ds.id)  # the next tick: new ones (here in the same emulated tenant)
    assert set(_rows(live_ds)) == {"users", "groups"}
    assert not old & {row.subscription_id for row in _rows(live_ds).values()}
