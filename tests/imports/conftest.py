"""Fixtures for the user-import tests: a gateway configured for a fresh tenant emulator (one per test)."""

from __future__ import annotations

import pytest

from emulator.server import EmulatorHandle
from tests.o365_helpers import emulator_env


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(emulator)

