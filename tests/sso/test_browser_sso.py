"""Single sign-on in a real Chromium against the tenant emulator: sign in, home page, /auth/verify, sign-out that
ends both sessions (with the front-channel call), an admin's revoke, auto-redirect and the bypass."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from emulator.server import EmulatorHandle
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from tests.o365_helpers import emulator_env
from tests.sso_helpers import add_office365_provider, enable_sso, ready_datasource

pytestmark = pytest.mark.browser
ADELE = "adele.vance@contoso.example"


@pytest.fixture
def app_env(sso_emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(sso_emulator)


@pytest.fixture
def sso_ready(app, live_server: LiveServer, sso_emulator: EmulatorHandle, admin_user):  # type: ignore[no-untyped-def]
    enable_sso(create_users=True)
    add_office365_provider(ready_datasource(sso_emulator))
    response = requests.patch(
        f"{sso_emulator.base_url}/_emulator/clients/{sso_emulator.config['client_id']}",
        json={"front_channel_logout_url": f"{live_server.url}/sso/front-channel-logout"},
        headers={"Authorization": f"Bearer {sso_emulator.config['control_key']}"}, verify=sso_emulator.ca_path,
        timeout=10)
    assert response.status_code < 300, response.text
    return live_server


def _microsoft_sign_in(page: Page, username: str = ADELE) -> None:
    page.get_by_label("Email, phone, or Skype").fill(username)
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_home_verify_and_sign_out_of_both(page: Page, sso_ready: LiveServer, sso_emulator: EmulatorHandle,
                                                  artifacts_dir: Path) -> None:
    base = sso_ready.url
    page.goto(f"{base}/login")
    page.get_by_role("link", name="Sign in with Office 365").click()
    _microsoft_sign_in(page)
    expect(page.get_by_role("heading", name="Welcome, Adele Vance")).to_be_visible()
    expect(page.locator("#tenant")).to_have_text("Contoso")  # the organisation's name, not its tenant id
    expect(page.locator("#sessions")).to_contain_text("this session")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(1)  # the navigation bar's, nothing else
    page.screenshot(path=str(artifacts_dir / "sso-home.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts_dir / "sso-home-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 720})
    cookie = next(c for c in page.context.cookies() if c["name"] == "gw_session")
    assert len(cookie["value"]) == 43
    verify = page.request.get(f"{base}/auth/verify")
    assert verify.status == 200 and verify.headers["x-auth-request-email"] == ADELE
    assert verify.headers["x-auth-request-assertion"].count(".") == 2

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You have been signed out")).to_be_visible()
    assert page.request.get(f"{base}/auth/verify").status == 401
    page.goto(f"{base}/sso/login/contoso")  # Microsoft's session ended too: credentials are asked again
    expect(page.get_by_label("Email, phone, or Skype")).to_be_visible()


def test_admin_revoke_ends_the_users_session_on_the_next_request(browser: Browser, sso_ready: LiveServer) -> None:
    base = sso_ready.url
    user = browser.new_context(ignore_https_errors=True).new_page()
    user.goto(f"{base}/sso/login/contoso")
    _microsoft_sign_in(user)
    expect(user.get_by_role("heading", name="Welcome, Adele Vance")).to_be_visible()

    admin = browser.new_context(ignore_https_errors=True).new_page()
    admin.goto(f"{base}/login")
    admin.get_by_label("Email").fill(ADMIN_EMAIL)
    admin.get_by_label("Password").fill(ADMIN_PASSWORD)
    admin.get_by_role("button", name="Sign in", exact=True).click()
    admin.goto(f"{base}/admin/sso/sessions")
    admin.get_by_label("Email").fill(ADELE)
    admin.get_by_role("button", name="Show sessions").click()
    expect(admin.locator("#sessions tbody tr")).to_have_count(1)
    admin.get_by_role("button", name="Sign out everywhere").click()
    expect(admin.get_by_text("Signed adele.vance@contoso.example out everywhere (1 session)")).to_be_visible()

    user.reload()
    expect(user).to_have_url(f"{base}/login?next=%2F")
    user.context.close()
    admin.context.close()


def test_auto_redirect_and_the_bypass_path(page: Page, sso_ready: LiveServer, artifacts_dir: Path) -> None:
    base = sso_ready.url
    enable_sso(create_users=True, auto_redirect=True)
    page.goto(f"{base}/admin/")
    expect(page.get_by_label("Email, phone, or Skype")).to_be_visible()  # straight to Microsoft
    page.goto(f"{base}/login?local=1")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Welcome, Ada Admin")).to_be_visible()
    page.goto(f"{base}/admin/sso")
    expect(page.locator("#providers")).to_contain_text("contoso")
    # Everyday settings in sight; the expert ones (clock leeway, overage cache, response mode, key rotation) are
    # grouped under Advanced, closed until asked for.
    expect(page.get_by_label("Session idle timeout (minutes)")).to_be_visible()
    expect(page.get_by_label("Session absolute timeout (hours)")).to_be_visible()
    experts = (page.get_by_label("Clock leeway on ID tokens (seconds)"),
               page.get_by_label("Group overage cache (minutes)"), page.locator("#o365-mode"),
               page.locator("#oidc-mode"), page.get_by_role("button", name="Rotate key"))
    for expert in experts:
        expect(expert).to_be_hidden()
    page.screenshot(path=str(artifacts_dir / "sso-admin.png"), full_page=True)
    page.locator("#advanced-settings summary").click()
    expect(page.get_by_label("Clock leeway on ID tokens (seconds)")).to_be_visible()
    page.get_by_text("Advanced: Forward-auth signing keys").click()
    expect(page.get_by_role("button", name="Rotate key")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "sso-admin-advanced.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts_dir / "sso-admin-390.png"), full_page=True)
