"""Fixtures of the single sign-on tests: a fake OpenID provider (one per test), and the same provider configured
with SSO enabled. The helpers they use live in tests/sso_helpers.py; the tenant emulator registered for sign-in
(`sso_emulator`) is in tests/conftest.py, as tests/ops uses it too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from tests.sso_helpers import FakeProvider, add_fake_provider, enable_sso


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
