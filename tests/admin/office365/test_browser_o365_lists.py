"""The Office 365 lists in a real Chromium (issue 12 points 1, 2, 6), on both backends: the User List searched,
filtered, sorted, paged forward and back with a chosen page size; a group's members searched, "is X a member?",
the CSV export downloaded whole, the users export of a search; a user's groups paged; the local Users page
filtered. Screenshots at 1280 and 390 px, with no sideways scrolling at 390."""

from __future__ import annotations

import csv
import io
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


def _shots(page: Page, artifacts_dir: Path, name: str) -> None:
    """Desktop and phone screenshots; at phone width nothing may stick out sideways."""
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(artifacts_dir / f"o365-lists-{name}-{width}.png"), full_page=True)
        if width == 390:
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name
    page.set_viewport_size({"width": 1280, "height": 900})


def _first_cells(page: Page, table: str) -> list[str]:
    return [t.strip() for t in page.locator(f"#{table} tbody tr td.col-name").all_inner_texts()]


def test_user_and_group_lists_in_the_browser(page: Page, live_server: LiveServer, admin_client: FlaskClient,
                                             emulator: EmulatorHandle, app: Flask, artifacts_dir: Path) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    tenant = Tenant(emulator)
    users = tenant.one("SELECT count(*) FROM users")
    _sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/datasources/{ds.id}/o365/users")
    expect(page.locator("#list-total")).to_contain_text(f"{users} users")

    # Page size and sort, then Next and Previous.
    page.get_by_label("Page size").select_option("25")
    page.get_by_label("Sort").select_option(label="Name Z–A")
    page.get_by_role("button", name="Find Users").click()
    expect(page.locator("#o365-users-table tbody tr")).to_have_count(25)
    first = _first_cells(page, "o365-users-table")
    assert first == sorted(first, key=str.lower, reverse=True)
    _shots(page, artifacts_dir, "user-list")
    page.locator("#next-page").click()
    expect(page.locator("#list-total")).to_contain_text("page 2 of 2")
    assert "skiptoken" not in page.url and "127.0.0.1:" + str(emulator.base_url.rsplit(":", 1)[-1]) not in page.url
    page.locator("#previous-page").click()
    expect(page.locator("#list-total")).to_contain_text("page 1 of 2")
    assert _first_cells(page, "o365-users-table") == first

    # Filters: disabled accounts of the tenant, then a search.
    page.get_by_label("Account").select_option("disabled")
    page.get_by_role("button", name="Find Users").click()
    disabled = tenant.one("SELECT count(*) FROM users WHERE account_enabled = 0")
    expect(page.locator("#list-total")).to_contain_text(f"{disabled} users match")
    expect(page.locator("#o365-users-table tbody tr")).to_have_count(disabled)
    page.get_by_role("link", name="Clear").click()
    page.get_by_role("searchbox", name="Find Users").fill("ann")
    page.get_by_label("Sort").select_option(label="Name A–Z")
    page.get_by_role("button", name="Find Users").click()
    expect(page.locator("#o365-users-table tbody tr")).to_have_count(3)
    assert _first_cells(page, "o365-users-table") == ["Ann O'Neil", "Anne Wallace", "Annette Hill"]
    with page.expect_download() as info:  # the users export takes the list's search along
        page.get_by_role("link", name="Export 3 matching users (CSV)").click()
    rows = list(csv.reader(io.StringIO(Path(info.value.path()).read_text())))
    assert info.value.suggested_filename == "users-matching.csv"
    assert sorted(r[1] for r in rows[1:]) == ["Ann O'Neil", "Anne Wallace", "Annette Hill"]

    # Group List by type.
    page.get_by_role("link", name="Groups", exact=True).click()
    page.get_by_label("Type").select_option(label="Microsoft 365")
    page.get_by_role("button", name="Find Groups").click()
    unified = tenant.one("SELECT count(*) FROM groups WHERE group_types LIKE '%Unified%'")
    expect(page.locator("#list-total")).to_contain_text(f"{unified} groups match")
    _shots(page, artifacts_dir, "group-list")


def test_group_members_search_is_member_and_export_in_the_browser(
        page: Page, live_server: LiveServer, admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask,
        artifacts_dir: Path) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    tenant = Tenant(emulator)
    everyone = tenant.group("All Company")
    members = tenant.members(everyone)
    _sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/datasources/{ds.id}/o365/groups/{everyone}")
    expect(page.locator("#member-total")).to_contain_text(f"{len(members)} members")

    page.get_by_role("searchbox", name="Find members").fill("meg")
    page.get_by_role("button", name="Find members").click()
    expect(page.locator("#group-members tbody tr")).to_have_count(1)
    expect(page.locator("#group-members")).to_contain_text("Megan Bowen")

    page.get_by_label("User's UPN or object id").fill("megan.bowen@contoso.example")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#is-member-result")).to_contain_text("Yes:")
    _shots(page, artifacts_dir, "group-members")
    page.get_by_label("User's UPN or object id").fill("nobody@contoso.example")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#is-member-result")).to_contain_text("No:")

    with page.expect_download() as info:
        page.locator("#export-members").click()
    download = info.value
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text())))
    assert download.suggested_filename == f"group-{everyone}-members.csv"
    assert len(rows) - 1 == len(members) and {r[0] for r in rows[1:]} == members


def test_a_users_groups_are_all_reachable_in_the_browser(page: Page, live_server: LiveServer,
                                                         admin_client: FlaskClient, emulator: EmulatorHandle,
                                                         app: Flask, artifacts_dir: Path) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    tenant = Tenant(emulator)
    adele = tenant.user("adele.vance@contoso.example")
    conn = tenant.conn()
    conn.execute("INSERT OR IGNORE INTO memberships (group_id, member_id, relation) "
                 "SELECT id, ?, 'member' FROM groups ORDER BY seq LIMIT 75", (adele,))
    conn.commit()
    total = tenant.one("SELECT count(*) FROM memberships WHERE member_id = ? AND relation = 'member'", adele)
    _sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/datasources/{ds.id}/o365/users/{adele}")
    expect(page.locator("#user-groups-range")).to_contain_text(f"Groups 1–50 of {total}")
    _shots(page, artifacts_dir, "user-groups")
    seen = page.locator("#user-groups li a").all_inner_texts()
    while page.locator("#groups-next").count():
        page.locator("#groups-next").click()
        expect(page.locator("#user-groups-range")).to_contain_text(f"Groups {len(seen) + 1}–")
        seen += page.locator("#user-groups li a").all_inner_texts()
    assert len(seen) == total
    page.locator("#groups-previous").click()
    expect(page.locator("#user-groups li")).to_have_count(50)


def test_local_users_page_filters_and_sorts_in_the_browser(page: Page, live_server: LiveServer,
                                                           admin_client: FlaskClient, artifacts_dir: Path) -> None:
    from tests.conftest import make_user

    for i in range(8):
        make_user(f"staff{i}@example.com", None, "User", active=i % 2 == 0, name=f"Staff {i}")
    _sign_in(page, live_server)
    page.goto(f"{live_server.url}/admin/users")
    page.get_by_label("Active").select_option("no")
    page.get_by_label("Sort").select_option(label="Name Z–A")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#users-total")).to_contain_text("4 users match")
    names = [t.strip() for t in page.locator("#users-table tbody tr td:first-child").all_inner_texts()]
    assert names == ["Staff 7", "Staff 5", "Staff 3", "Staff 1"]
    assert re.search(r"active=no", page.url)
    _shots(page, artifacts_dir, "local-users")
