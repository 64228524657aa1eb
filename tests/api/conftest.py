"""Fixtures for the JSON API tests: a datasource authorized on the tenant emulator (the `emulator` fixture of
tests/conftest.py, started only by the tests that use it), and an API key of the signed-in administrator."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.models import Datasource
from emulator.server import EmulatorHandle
from tests.o365_ops_helpers import api_key_for, authorized_datasource


@pytest.fixture
def ds(admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask) -> Datasource:
    return authorized_datasource(admin_client, emulator, app)


@pytest.fixture
def key(admin_user) -> str:  # type: ignore[no-untyped-def]
    return api_key_for(admin_user)
