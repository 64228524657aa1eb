"""Fixtures for the datasource tests: a gateway configured for a fresh tenant emulator (one per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.server import EmulatorHandle, start_in_thread
from tests.o365_helpers import CALLBACK_PATH, emulator_env


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorHandle]:
    handle = start_in_thread(tmp_path / "emulator", redirect_uris=[
        f"http://localhost{CALLBACK_PATH}", f"http://127.0.0.1{CALLBACK_PATH}"])
    yield handle
    handle.stop()


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(emulator)
