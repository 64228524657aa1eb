"""In a real Chromium: the admin signs in and reaches Administration; a plain user gets 403 there."""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, USER_EMAIL, USER_PASSWORD, LiveServer, open_admin_menu

pytestmark = pytest.mark.browser


def _sign_in(page: Page, server: LiveServer, email: str, password: str) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_admin_signs_in_and_reaches_administration(page: Page, live_server: LiveServer, admin_user,  # type: ignore[no-untyped-def]
                                                    artifacts_dir: Path) -> None:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("response", lambda response: errors.append(response.url) if response.status == 404 else None)
    page.goto(f"{live_server.url}/admin/")
    expect(page).to_have_url(f"{live_server.url}/login?next=%2Fadmin%2F")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    open_admin_menu(page)
    page.get_by_role("link", name="Users").first.click()
    expect(page.get_by_role("cell", name=ADMIN_EMAIL, exact=True)).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "admin-users.png"), full_page=True)
    assert errors == [], errors  # CSP violations and script errors show up here


def test_admin_creates_a_user_through_the_form(page: Page, live_server: LiveServer, admin_user) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, live_server, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto(f"{live_server.url}/admin/users")
    page.get_by_role("link", name="+ Add new").click()
    page.get_by_label("Email").fill("browser.made@example.com")
    page.get_by_label("Display name").fill("Browser Made")
    page.get_by_label("Manage datasources").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("User browser.made@example.com created.")).to_be_visible()
    expect(page.get_by_role("cell", name="browser.made@example.com", exact=True)).to_be_visible()


def test_plain_user_gets_403_in_administration(page: Page, live_server: LiveServer, plain_user) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, live_server, USER_EMAIL, USER_PASSWORD)
    expect(page.get_by_role("heading", name="Welcome, Paul Plain")).to_be_visible()
    expect(page.get_by_role("link", name="Administration")).to_have_count(0)
    response = page.goto(f"{live_server.url}/admin/")
    assert response is not None and response.status == 403
    expect(page.get_by_text("You do not have permission to open this page.")).to_be_visible()
