"""Access policies in a real Chromium against the emulated tenant: the type-ahead picker finds an Office 365 group
by name, the saved rule shows it by name; Down moves a rule (a plain form post, no script needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Page, expect

from emulator.server import EmulatorHandle
from policies import service
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from tests.o365_ops_helpers import Tenant, authorized_datasource

pytestmark = [pytest.mark.browser, pytest.mark.one_backend]


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    from tests.o365_helpers import emulator_env

    return emulator_env(emulator)


def test_pick_a_group_by_name_then_reorder(page: Page, live_server: LiveServer, admin_client: FlaskClient,
                                           emulator: EmulatorHandle, app: Flask, tenant: Tenant,
                                           artifacts_dir: Path) -> None:
    authorized_datasource(admin_client, emulator, app)
    service.save({"hosts": [], "rules": [{"id": "r-first", "name": "Health", "host": "*", "paths": ["/healthz"],
                                          "action": "public"}]}, ADMIN_EMAIL)
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/admin/access-policies")
    page.locator("#add-rule").click()
    expect(page.locator("#rule-form[data-ready='1']")).to_have_count(1)  # the form's script has run

    page.get_by_label("Name", exact=True).fill("Legal documents")
    page.get_by_label("Host", exact=True).fill("legal.example.com")
    page.get_by_label("Paths").fill("/cases/")
    page.get_by_label("Public (no sign-in)").check()
    expect(page.locator("#criteria")).to_be_hidden()  # only the fields that apply
    page.get_by_label("Allow", exact=True).check()
    expect(page.locator("#criteria")).to_be_visible()
    with page.expect_response(re.compile(r"/admin/access-policies/groups\?q=Leg")) as answered:
        page.locator("#groups_any-search").press_sequentially("Leg", delay=30)
    assert answered.value.ok
    page.get_by_role("option", name=re.compile("^Legal")).first.click()
    expect(page.locator("#groups_any-chosen")).to_contain_text("Legal")
    expect(page.get_by_role("checkbox", name="Legal")).to_be_checked()
    page.screenshot(path=str(artifacts_dir / "access-policies-picker.png"), full_page=True)
    page.locator("#save-rule").click()

    expect(page.locator(".alert-success")).to_contain_text("Rule “Legal documents” added")
    second = page.locator("#rule-list > li").nth(1)
    expect(second).to_contain_text("legal.example.com /cases/ — allow members of Legal")
    legal = tenant.group("Legal")
    assert service.current()[1]["rules"][1]["criteria"] == {"groups_any": [{"id": legal, "name": "Legal"}]}

    page.get_by_role("button", name="Down (move Health down)").click()
    expect(page.locator("#rule-list > li").first).to_contain_text("Legal documents")
    expect(page.locator("#rule-list > li").nth(1)).to_contain_text("Health")
    assert [r["id"] for r in service.current()[1]["rules"]][1] == "r-first"
    page.screenshot(path=str(artifacts_dir / "access-policies-reordered.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 900})
    page.screenshot(path=str(artifacts_dir / "access-policies-reordered-390.png"), full_page=True)
