"""Fixtures for bulk jobs: a fresh tenant emulator per test, an authorized datasource, and a queue that records
what was handed to it (the tests run the runs themselves, as a worker would)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bulk import service
from core.models import Datasource
from emulator.server import EmulatorHandle, start_in_thread
from tests.o365_helpers import CALLBACK_PATH, emulator_env
from tests.o365_ops_helpers import Tenant, authorized_datasource


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorHandle]:
    handle = start_in_thread(tmp_path / "emulator", users=260, redirect_uris=[
        f"http://localhost{CALLBACK_PATH}", f"http://127.0.0.1{CALLBACK_PATH}"])
    yield handle
    handle.stop()


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(emulator)


@pytest.fixture
def tenant(emulator: EmulatorHandle) -> Tenant:
    return Tenant(emulator)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Run ids handed to the queue (nothing consumes them: tests run them with jobs.runner.execute_run)."""
    ids: list[int] = []
    monkeypatch.setattr(service, "enqueue_run", ids.append)
    return ids


@pytest.fixture
def ds(admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask) -> Datasource:
    app.config["BULK_THROTTLE_PAUSE"] = 0.0
    return authorized_datasource(admin_client, emulator, app)
