"""Fixtures of the operations tests: the tenant emulator registered for sign-in and datasource authorization."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.server import EmulatorHandle, start_in_thread
from tests.sso_helpers import SSO_PATHS


@pytest.fixture
def sso_emulator(tmp_path: Path) -> Iterator[EmulatorHandle]:
    handle = start_in_thread(tmp_path / "emulator", redirect_uris=[
        f"http://{host}{path}" for host in ("localhost", "127.0.0.1") for path in SSO_PATHS])
    yield handle
    handle.stop()
