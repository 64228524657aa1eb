"""Fixtures of the single sign-on tests: a fake OpenID provider (one per test), the same provider configured and
SSO enabled, and a tenant emulator registered for the sign-in redirect URIs. The helpers they use live in
tests/sso_helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from emulator.server import EmulatorHandle, start_in_thread
from tests.sso_helpers import SSO_PATHS, FakeProvider, add_fake_provider, enable_sso


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    yield provider
    provider.stop()


@pytest.fixture
def fake(app: Flask, fake_provider: FakeProvider) -> FakeProvider:
    """The fake provider added as provider "fake", SSO enabled, creating users on first sign-in."""
    enable_sso(create_users=True)
    add_fake_provider(fake_provider)
    return fake_provider


@pytest.fixture
def sso_emulator(tmp_path: Path) -> Iterator[EmulatorHandle]:
    """A fresh tenant emulator with the sign-in, sign-out and datasource callbacks registered."""
    handle = start_in_thread(tmp_path / "emulator", redirect_uris=[
        f"http://{host}{path}" for host in ("localhost", "127.0.0.1") for path in SSO_PATHS])
    yield handle
    handle.stop()
