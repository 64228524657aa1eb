"""Fixtures for the JSON API tests: a tenant emulator (started only by the tests that use it), an authorized
datasource on it, and an API key of the signed-in administrator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.models import Datasource
from emulator.server import EmulatorHandle, start_in_thread
from tests.o365_helpers import CALLBACK_PATH
from tests.o365_ops_helpers import Tenant, api_key_for, authorized_datasource


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorHandle]:
    handle = start_in_thread(tmp_path / "emulator", redirect_uris=[
        f"http://localhost{CALLBACK_PATH}", f"http://127.0.0.1{CALLBACK_PATH}"])
    yield handle
    handle.stop()


@pytest.fixture
def tenant(emulator: EmulatorHandle) -> Tenant:
    return Tenant(emulator)


@pytest.fixture
def ds(admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask) -> Datasource:
    return authorized_datasource(admin_client, emulator, app)


@pytest.fixture
def key(admin_user) -> str:  # type: ignore[no-untyped-def]
    return api_key_for(admin_user)
