"""Fixtures for live access: a gateway on a fresh tenant emulator (sign-in and datasource callbacks registered),
an authorized Office 365 datasource that is also the sign-in provider, and a way to run one live round now.

For the notification endpoint alone (tests/live/test_endpoint.py): a ready datasource with live access on and a
Graph subscription row, Graph-shaped notification items, and a poster; tests/live/test_subscriptions.py drives
subscriptions end to end against its own emulator with the gateway on a live server."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.crypto import secret_box
from core.extensions import db
from core.models import Datasource, utcnow
from emulator.server import EmulatorHandle
from jobs.models import TaskRun
from jobs.runner import execute_run
from live.models import GraphSubscription, LiveAccess
from live.sync import KIND, request_sync
from tests.o365_helpers import emulator_env
from tests.o365_ops_helpers import authorized_datasource
from tests.sso_helpers import add_office365_provider, enable_sso


@pytest.fixture
def app_env(sso_emulator: EmulatorHandle, store_env: dict[str, str]) -> dict[str, str]:
    return {**emulator_env(sso_emulator), **store_env, "ALLOWED_REDIRECT_DOMAINS": ".example.com"}


@pytest.fixture
def contoso(app: Flask, sessions: Any, admin_client: FlaskClient, sso_emulator: EmulatorHandle) -> Datasource:
    """The tenant's datasource, authorized by its Global Administrator, also the Office 365 sign-in provider."""
    datasource = authorized_datasource(admin_client, sso_emulator, app)
    datasource.sso_enabled = True  # "Enable Azure OpenID Connect Single-Sign-On" ticked
    db.session.commit()
    enable_sso(create_users=True)
    add_office365_provider(datasource)
    return datasource


def turn_on_live_access(datasource: Datasource, *, notifications: bool = False, poll_seconds: int = 60) -> LiveAccess:
    live = LiveAccess(datasource_id=datasource.id, enabled=True, notifications=notifications,
                      poll_seconds=poll_seconds)
    db.session.add(live)
    db.session.commit()
    return live


def run_live_round(datasource: Datasource, reason: str = "notification") -> TaskRun | None:
    """Ask for a round due now and run it here (tests have no job consumer); the run, or None if forgotten."""
    assert request_sync(datasource.id, reason, delay=0)
    run_id = db.session.scalar(select(TaskRun.id).where(TaskRun.kind == KIND, TaskRun.status == TaskRun.QUEUED)
                               .order_by(TaskRun.id.desc()))
    assert run_id is not None
    run = execute_run(run_id)
    db.session.expire_all()
    return db.session.get(TaskRun, run_id) if run is not None else None


def control(emulator: EmulatorHandle, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(method, f"{emulator.base_url}/_emulator/{path}", json=body, verify=emulator.ca_path,
                                headers={"Authorization": f"Bearer {emulator.config['control_key']}"}, timeout=10)
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


TENANT = "0b7f3c2e-1d4a-4c61-9f0e-5a2b8c7d6e10"
CLIENT_STATE = "the-genuine-client-state-0123456789"


@pytest.fixture
def datasource(app: Flask) -> Datasource:
    """A ready Office 365 datasource (no grant: the endpoint never calls Graph) with live access on."""
    ds = Datasource(name="Contoso", status=Datasource.READY, tenant_id=TENANT, tenant_name="Contoso")
    db.session.add(ds)
    db.session.flush()
    db.session.add(LiveAccess(datasource_id=ds.id, enabled=True, notifications=True))
    db.session.commit()
    return ds


@pytest.fixture
def subscription(datasource: Datasource) -> GraphSubscription:
    """The datasource's `users` subscription, its clientState stored encrypted."""
    sub = GraphSubscription(datasource_id=datasource.id, subscription_id=str(uuid.uuid4()), resource="users",
                            client_state=secret_box().encrypt(CLIENT_STATE), status=GraphSubscription.ACTIVE,
                            expires_at=utcnow() + timedelta(days=20), notification_url="http://127.0.0.1/graph")
    db.session.add(sub)
    db.session.commit()
    return sub


@pytest.fixture
def make_item(subscription: GraphSubscription) -> Callable[..., dict[str, Any]]:
    """A change notification as Graph sends it for the subscription; keyword arguments replace fields."""

    def make(user_id: str = "11111111-2222-3333-4444-555555555555", **fields: Any) -> dict[str, Any]:
        item = {"subscriptionId": subscription.subscription_id,
                "subscriptionExpirationDateTime": "2026-12-31T11:00:00.0000000+00:00",
                "changeType": "updated", "resource": f"Users/{user_id}", "clientState": CLIENT_STATE,
                "tenantId": TENANT,
                "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{user_id}",
                                 "id": user_id, "organizationId": TENANT}}
        item.update(fields)
        return item

    return make


@pytest.fixture
def post_items(client: FlaskClient) -> Callable[..., Any]:
    """POST {"value": items} to the change endpoint (or `path`) from `ip` (default: an address of this test's own,
    as the refusal budget per address may live in a Redis that parallel tests share)."""
    own = unique_ip()

    def post(*items: dict[str, Any], path: str = "/graph/notifications", ip: str | None = None) -> Any:
        return client.post(path, json={"value": list(items)}, environ_base={"REMOTE_ADDR": ip or own})

    return post


def unique_ip() -> str:
    """A documentation-range IPv6 address no other test uses."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


@pytest.fixture
def live_of() -> Callable[[int], LiveAccess]:
    """A datasource's LiveAccess row as stored now."""

    def read(datasource_id: int) -> LiveAccess:
        db.session.expire_all()
        return db.session.scalars(db.select(LiveAccess).filter_by(datasource_id=datasource_id)).one()

    return read
