"""Step-up and Request access in a real Chromium against the tenant emulator (#14): the extra sign-in with its
"Approve sign-in request" step lands back on the protected URL; a person denied asks to join the group from the
denied page, an Administrator approves it, and the person sees the outcome."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect

from core.extensions import db
from emulator.server import EmulatorHandle
from policies import service as policies
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from tests.o365_helpers import emulator_env
from tests.o365_ops_helpers import Tenant, authorized_datasource
from tests.sso_helpers import add_office365_provider, enable_sso

pytestmark = [pytest.mark.browser, pytest.mark.one_backend]  # the backends are covered by test_denied.py
ADELE = "adele.vance@contoso.example"
APPROVALS = "https://finance.example.com/approvals/7"
REPORTS = "https://finance.example.com/reports/q4"


@pytest.fixture
def app_env(sso_emulator: EmulatorHandle) -> dict[str, str]:
    return {**emulator_env(sso_emulator), "ALLOWED_REDIRECT_DOMAINS": ".example.com"}


@pytest.fixture
def finance(app: Flask, admin_client: FlaskClient, live_server: LiveServer, sso_emulator: EmulatorHandle) -> str:
    ds = authorized_datasource(admin_client, sso_emulator, app)
    ds.sso_enabled = True
    db.session.commit()
    enable_sso(create_users=True)
    add_office365_provider(ds)
    db.session.commit()
    group = Tenant(sso_emulator).group("Sales and Marketing")
    policies.save({"hosts": [{"host": "finance.example.com", "default": "signed_in"}], "rules": [
        {"id": "r-approvals", "name": "Finance approvals", "enabled": True, "host": "finance.example.com",
         "paths": ["/approvals/"], "methods": [], "networks": [], "action": "allow",
         "criteria": {"groups_any": [{"id": group, "name": "Sales and Marketing"}]}},
        {"id": "r-reports", "name": "Finance reports", "enabled": True, "host": "finance.example.com",
         "paths": ["/reports/"], "methods": [], "networks": [], "action": "allow",
         "criteria": {"auth_context": "c1"}}]}, actor="test")
    return group


def _adele(browser: Browser, base: str) -> Page:
    page = browser.new_context(ignore_https_errors=True).new_page()
    page.context.route("https://finance.example.com/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<!doctype html><title>Finance</title><h1>Finance app</h1>"))
    page.goto(f"{base}/sso/login/contoso")
    page.get_by_label("Email, phone, or Skype").fill(ADELE)
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Adele Vance")).to_be_visible()
    return page


def test_step_up_with_the_extra_approval_lands_on_the_page(browser: Browser, finance: str,
                                                            live_server: LiveServer, artifacts_dir: Path) -> None:
    page = _adele(browser, live_server.url)
    page.goto(f"{live_server.url}/auth/start?" + urlencode({"rd": REPORTS}))
    expect(page.get_by_role("heading", name="Approve sign-in request")).to_be_visible()
    expect(page.locator("main, body").first).to_contain_text("authentication context c1")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(artifacts_dir / f"emulator-mfa-{width}.png"), full_page=True)
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name="Finance app")).to_be_visible()
    assert page.url == REPORTS
    assert page.request.get(f"{live_server.url}/auth/verify", headers={"X-Original-URL": REPORTS}).status == 200
    page.context.close()


def test_denied_request_access_admin_approves_requester_sees_it(browser: Browser, finance: str,
                                                                 live_server: LiveServer, sso_emulator: EmulatorHandle,
                                                                 artifacts_dir: Path) -> None:
    base = live_server.url
    adele = _adele(browser, base)
    denied_url = f"{base}/auth/denied?" + urlencode({"rd": APPROVALS})
    adele.goto(denied_url)
    expect(adele.get_by_role("heading", name="You do not have access to this page")).to_be_visible()
    expect(adele.locator("#denial-reason")).to_contain_text("Sales and Marketing")
    for width in (1280, 390):
        adele.set_viewport_size({"width": width, "height": 900})
        adele.screenshot(path=str(artifacts_dir / f"denied-{width}.png"), full_page=True)
    adele.set_viewport_size({"width": 1280, "height": 900})
    adele.get_by_role("button", name="Request access to Sales and Marketing").click()
    expect(adele.get_by_text("Access requested: an owner of Sales and Marketing")).to_be_visible()
    expect(adele.locator("[data-request-state=pending]")).to_be_visible()

    admin = browser.new_context(ignore_https_errors=True).new_page()
    admin.goto(f"{base}/login")
    admin.get_by_label("Email").fill(ADMIN_EMAIL)
    admin.get_by_label("Password").fill(ADMIN_PASSWORD)
    admin.get_by_role("button", name="Sign in", exact=True).click()
    admin.goto(f"{base}/admin/access-requests")
    expect(admin.get_by_role("heading", name=f"{ADELE} asks to join Sales and Marketing")).to_be_visible()
    admin.get_by_role("button", name=f"Approve {ADELE} joining Sales and Marketing").click()
    expect(admin.get_by_text(f"Approved: {ADELE} is now a member of Sales and Marketing.")).to_be_visible()
    assert Tenant(sso_emulator).user(ADELE) in Tenant(sso_emulator).members(finance)

    adele.goto(f"{base}/")  # the next visit shows the decision
    expect(adele.locator("[data-request-outcome=approved]")).to_contain_text("was approved by admin@example.com")
    for width in (1280, 390):
        adele.set_viewport_size({"width": width, "height": 900})
        adele.screenshot(path=str(artifacts_dir / f"home-request-approved-{width}.png"), full_page=True)
    adele.goto(denied_url)
    expect(adele.locator("[data-request-outcome]")).to_have_count(0)  # shown once
    adele.context.close()
    admin.context.close()
