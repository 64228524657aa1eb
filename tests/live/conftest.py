"""Fixtures for live access: a gateway on a fresh tenant emulator (sign-in and datasource callbacks registered),
an authorized Office 365 datasource that is also the sign-in provider, and a way to run one live round now."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.extensions import db
from core.models import Datasource
from emulator.server import EmulatorHandle
from jobs.models import TaskRun
from jobs.runner import execute_run
from live.models import LiveAccess
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
