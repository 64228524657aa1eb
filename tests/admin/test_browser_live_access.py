"""The Live access section in Chromium at 1280 and 390 px: turned on with change notifications against the tenant
emulator (the gateway on a live server, which Graph's handshake reaches), the subscriptions listed, then a refused
notification shown; screenshots in test-artifacts/ and no sideways scrolling on a phone."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Page, expect

from emulator.server import EmulatorHandle
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from tests.o365_helpers import emulator_env
from tests.o365_ops_helpers import authorized_datasource

pytestmark = [pytest.mark.browser, pytest.mark.one_backend]


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(emulator)


def test_live_access_section_at_desktop_and_phone_width(page: Page, app: Flask, admin_client: FlaskClient,
                                                        emulator: EmulatorHandle, live_server: LiveServer,
                                                        artifacts_dir: Path) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    app.config["PUBLIC_BASE_URL"] = live_server.url
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/admin/datasources/{ds.id}")
    section = page.locator("#live-access")
    expect(section.locator("#live-state")).to_have_text("Off")
    section.get_by_role("switch", name="Live access").check()
    expect(section.get_by_role("switch", name="Use change notifications")).to_be_checked()
    section.get_by_label("Poll interval (seconds)").fill("45")
    section.get_by_role("button", name="Save live access").click()
    expect(page.get_by_text("Live access is on: Microsoft Graph reports changes")).to_be_visible()
    expect(section.locator("#live-state")).to_have_text("On")
    expect(section.locator("#live-polling")).to_contain_text("Fallback polling is off.")
    expect(section.locator("#live-subscriptions tbody tr")).to_have_count(2)
    # someone posts a forged notification: it shows as refused
    forged = {"value": [{"subscriptionId": "6e0c3c8a-0000-4000-8000-000000000000", "clientState": "guess",
                         "tenantId": "x", "changeType": "updated", "resource": "Users/x"}]}
    assert requests.post(f"{live_server.url}/graph/notifications", json=forged, timeout=10).status_code == 202
    page.reload()
    expect(section.locator("#live-refusals")).to_contain_text("unknown subscription")
    section.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "live-access-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(section.locator("#live-subscriptions")).to_be_visible()
    scroll, inner = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, "the page scrolls sideways on a phone"
    page.screenshot(path=str(artifacts_dir / "live-access-390.png"), full_page=True)
