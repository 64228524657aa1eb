"""The ten Office 365 operations in a real Chromium against the emulated tenant, the emulator's state checked
after each write; the datasource's operations and an API key (bulk work: tests/bulk/test_browser_bulk.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Page, expect

from emulator.server import EmulatorHandle
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from tests.o365_ops_helpers import Tenant, authorized_datasource

pytestmark = pytest.mark.browser


def _sign_in(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _pick(page: Page, field: str, text: str, option: str) -> None:
    page.wait_for_load_state()  # the picker's script is attached
    page.locator(f"#{field}-search").fill(text)
    page.get_by_role("option", name=re.compile(option)).first.click()


def test_the_ten_operations_in_the_browser(page: Page, live_server: LiveServer, admin_client: FlaskClient,
                                           emulator: EmulatorHandle, app: Flask,
                                           artifacts_dir: Path) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    tenant = Tenant(emulator)
    shot = lambda name: page.screenshot(path=str(artifacts_dir / f"o365-{name}.png"), full_page=True)  # noqa: E731
    _sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/datasources/{ds.id}")
    page.locator("#operations").get_by_role("link", name=re.compile("^Users")).click()

    # User List, with server-side paging through Graph's cursor.
    expect(page.get_by_role("heading", name="User List")).to_be_visible()
    expect(page.locator("#o365-users-table tbody tr")).to_have_count(50)
    page.get_by_label("Page size").select_option("25")
    page.get_by_role("button", name="Find Users").click()
    expect(page.locator("#o365-users-table tbody tr")).to_have_count(25)
    first_page = page.locator("#o365-users-table tbody tr").first.inner_text()
    shot("user-list")
    page.locator("#next-page").click()
    expect(page.locator("#o365-users-table tbody tr").first).not_to_have_text(first_page)

    # Find Users, then the user's page with licences and groups.
    page.get_by_role("searchbox", name="Find Users").fill("megan")
    page.get_by_role("button", name="Find Users").click()
    page.get_by_role("link", name="Megan Bowen").click()
    expect(page.locator("#user-details")).to_contain_text("megan.bowen@contoso.example")
    expect(page.locator("#user-licences li").first).to_be_visible()
    shot("user-page")

    # Group List and Find Groups (type and member count).
    page.get_by_role("link", name="Groups", exact=True).click()
    expect(page.get_by_role("heading", name="Group List")).to_be_visible()
    expect(page.locator("#o365-groups-table")).to_contain_text("Microsoft 365")
    shot("group-list")
    page.get_by_role("searchbox", name="Find Groups").fill("Fin")
    page.get_by_role("button", name="Find Groups").click()
    row = page.get_by_role("row", name=re.compile("Finance"))
    expect(row).to_contain_text("Mail-enabled security")

    # Create Group: the nickname is offered from the name; a taken one is a field error.
    page.get_by_role("link", name="+ Create Group").click()
    page.wait_for_load_state()
    page.get_by_label("Display name").fill("Finance")
    expect(page.get_by_label("Mail nickname")).to_have_value("finance")
    page.get_by_role("button", name="Create Group").click()
    expect(page.locator(".invalid-feedback, .text-danger").first).to_contain_text("already used")
    shot("create-group-taken")
    page.get_by_label("Display name").fill("Équipe Été 2027")
    page.get_by_label("Mail nickname").fill("")
    page.get_by_label("Display name").press("End")
    page.get_by_label("Display name").type(" ")
    expect(page.get_by_label("Mail nickname")).to_have_value("equipe-ete-2027")
    page.get_by_label("Microsoft 365 (with a mailbox and Teams)").check()
    page.get_by_role("button", name="Create Group").click()
    expect(page.get_by_text("Group Équipe Été 2027 created")).to_be_visible()
    gid = tenant.one("SELECT id FROM groups WHERE mail_nickname = 'equipe-ete-2027'")
    assert gid and tenant.one("SELECT group_types FROM groups WHERE id = ?", gid) == '["Unified"]'

    # Add User to Group with the type-ahead picker; a second add says "already a member".
    adele = tenant.user("adele.vance@contoso.example")
    for outcome in ("The user was added to the group.", "Already a member"):
        _pick(page, "user_id", "adel", "Adele Vance")
        expect(page.locator(".picker-selected")).to_contain_text("Adele Vance")
        page.get_by_role("button", name="Add User to Group").click()
        expect(page.get_by_text(outcome)).to_be_visible()
    assert tenant.members(gid) == {adele}
    expect(page.locator("#group-members")).to_contain_text("Adele Vance")
    shot("group-page")

    # Remove User From Group, after a confirmation.
    page.get_by_role("link", name="Remove Adele Vance").click()
    expect(page.get_by_text("Only the membership is removed")).to_be_visible()
    page.get_by_role("button", name="Remove User From Group").click()
    expect(page.get_by_text("The user was removed from the group.")).to_be_visible()
    assert tenant.members(gid) == set()

    # Licence Plan List: seats as a meter, service plans.
    page.get_by_role("link", name="Licences", exact=True).click()
    expect(page.locator("#licence-plans meter")).to_have_count(3)
    expect(page.locator("#licence-plans")).to_contain_text("1 free")
    shot("licence-plans")

    # Assign Licence to User: no usage location -> offered to set it, then assigned.
    upn = tenant.upn("usage_location IS NULL AND account_enabled = 1")
    uid, name = tenant.user(upn), tenant.one("SELECT display_name FROM users WHERE user_principal_name = ?", upn)
    bi = tenant.sku("POWER_BI_PRO")
    page.get_by_role("link", name="Assign Licence to User").click()
    _pick(page, "user_id", name, name)
    page.get_by_label(re.compile("Power BI Pro")).check()
    page.get_by_role("button", name="Assign Licence to User").click()
    expect(page.locator("#usage-location-error")).to_contain_text("no usage location")
    shot("assign-licence-usage-location")
    page.get_by_label("Set usage location").fill("IE")
    page.get_by_label(re.compile("Power BI Pro")).check()
    page.get_by_role("button", name="Assign Licence to User").click()
    expect(page.get_by_text("Usage location set to IE")).to_be_visible()
    assert bi in tenant.licences(uid)

    # Remove Licence from User, from the user's page.
    page.get_by_role("link", name=re.compile("Remove Power BI")).click()
    page.get_by_role("button", name="Remove Licence from User").click()
    expect(page.get_by_text("The licence was removed from the user.")).to_be_visible()
    assert bi not in tenant.licences(uid)


def test_datasource_operations_and_an_api_key(page: Page, live_server: LiveServer, admin_client: FlaskClient,
                                             emulator: EmulatorHandle, app: Flask, artifacts_dir: Path) -> None:
    """(Bulk work has its own browser test: tests/bulk/test_browser_bulk.py.)"""
    ds = authorized_datasource(admin_client, emulator, app)
    _sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/datasources/{ds.id}")
    expect(page.locator("#operations")).to_contain_text("Licences")
    page.screenshot(path=str(artifacts_dir / "o365-datasource-operations.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/api-keys")
    page.get_by_label("User").fill(ADMIN_EMAIL)
    page.get_by_label("Name").fill("Nightly licence report")
    page.get_by_label("Expires after (days)").fill("90")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-api-key").inner_text()
    page.screenshot(path=str(artifacts_dir / "o365-api-key-created.png"), full_page=True)
    answer = page.request.get(f"{live_server.url}/api/v1/datasources", headers={"Authorization": f"Bearer {key}"})
    assert answer.ok and answer.json()["datasources"][0]["name"] == ds.name
    page.get_by_role("link", name="Done").click()
    expect(page.locator("#api-keys-table")).to_contain_text("Nightly licence report")
    expect(page.locator("#api-keys-table")).not_to_contain_text(key)
    page.screenshot(path=str(artifacts_dir / "o365-api-keys.png"), full_page=True)
    page.goto(f"{live_server.url}/api/v1/docs")
    page.screenshot(path=str(artifacts_dir / "o365-api-docs.png"), full_page=True)
