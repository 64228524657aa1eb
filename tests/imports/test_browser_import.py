"""In Chromium: create a schedule, Run now, watch the progress bar reach the end, see the imported users on the
Users page; change users in the emulator, run again, and see exactly those changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Page, expect

from emulator.server import EmulatorHandle
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer, open_admin_menu
from tests.imports.helpers import authorized_datasource, control, imported_users, use_test_queue

pytestmark = pytest.mark.browser


def _run_now_and_wait(page: Page, artifacts_dir: Path, name: str) -> None:
    page.get_by_role("button", name="Run now").first.click()
    expect(page.locator("#progress-bar")).to_be_visible()
    expect(page.locator('#run-status [data-field="status"]')).to_have_text("succeeded", timeout=30_000)
    bar = page.locator("#progress-bar")
    assert bar.evaluate("el => el.value === el.max && el.max > 0")
    page.get_by_role("link", name="show what it changed").click()
    expect(page.locator("#progress-bar")).to_have_attribute("value", "1")
    page.screenshot(path=str(artifacts_dir / name), full_page=True)


def test_schedule_run_progress_and_users(  # type: ignore[no-untyped-def]
        page: Page, live_server: LiveServer, app: Flask, client: FlaskClient, admin_user,
        emulator: EmulatorHandle, tmp_path: Path, database_url: str, artifacts_dir: Path) -> None:
    from jobs.queue import start_embedded_consumer, stop_embedded_consumer
    from tests.conftest import sign_in

    sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    datasource = authorized_datasource(client, emulator)
    app.config["IMPORT_PAGE_SIZE"] = 5
    huey = use_test_queue(app, tmp_path, database_url)
    start_embedded_consumer(app, workers=1)
    control(emulator, "POST", "faults", {"kind": "delay", "delay_ms": 120, "path": "/users/delta"})
    try:
        page.goto(f"{live_server.url}/login")
        page.get_by_label("Email").fill(ADMIN_EMAIL)
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        open_admin_menu(page)
        page.get_by_role("link", name="Scheduled tasks", exact=True).click()
        page.get_by_role("link", name="+ Add new").click()
        page.get_by_label("Name").fill("Contoso hourly import")
        page.get_by_label("Data source").select_option(label=datasource.name)
        page.get_by_label("Schedule").select_option(label="Hourly")
        page.get_by_label("Minutes past the hour").fill("15")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("Scheduled task Contoso hourly import saved.")).to_be_visible()
        expect(page.locator("#task-summary")).to_contain_text("Hourly at :15")

        _run_now_and_wait(page, artifacts_dir, "import-first-run.png")
        expect(page.locator('[data-field="created"]')).to_have_text("50")
        open_admin_menu(page)
        page.get_by_role("link", name="Users", exact=True).click()
        page.get_by_label("Search users").fill("adele")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#users-table")).to_contain_text("adele.vance@contoso.example")

        adele = next(u for u in imported_users(datasource).values() if u.email == "adele.vance@contoso.example")
        control(emulator, "PATCH", f"users/{adele.object_id}", {"displayName": "Adele Renamed"})
        control(emulator, "POST", "users", {"userPrincipalName": "zoe.new@contoso.example", "displayName": "Zoe New",
                                            "mailNickname": "zoe.new", "accountEnabled": True})
        open_admin_menu(page)
        page.get_by_role("link", name="Scheduled tasks", exact=True).click()
        page.get_by_role("link", name="Contoso hourly import").click()
        _run_now_and_wait(page, artifacts_dir, "import-second-run.png")
        expect(page.locator("#names-created")).to_have_text("Zoe New")
        expect(page.locator("#names-updated")).to_have_text("Adele Renamed")
        for field, value in (("created", "1"), ("updated", "1"), ("disabled", "0"), ("removed", "0"),
                             ("errors", "0")):
            expect(page.locator(f'dd[data-field="{field}"]')).to_have_text(value)
        open_admin_menu(page)
        page.get_by_role("link", name="Users", exact=True).click()
        page.get_by_label("Search users").fill("zoe")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#users-table")).to_contain_text("Zoe New")
        page.get_by_label("Search users").fill("Adele")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#users-table")).to_contain_text("Adele Renamed")
        page.screenshot(path=str(artifacts_dir / "import-users.png"), full_page=True)
    finally:
        stop_embedded_consumer()
        huey.flush()


# Each schedule and the fields it uses: what the form shows once it is chosen.
SCHEDULE_FIELDS = {
    "Every N minutes": ["Every N minutes"], "Hourly": ["Minutes past the hour"],
    "Daily": ["At (HH:MM)", "Weekdays only (daily)"], "Weekly": ["Day of the week (weekly)", "At (HH:MM)"],
    "Monthly": ["Day of the month (monthly)", "At (HH:MM)"], "Once": ["Run at (once)"],
    "On demand (webhook)": []}


def test_task_form_shows_only_the_fields_of_the_chosen_schedule(page: Page, live_server: LiveServer,  # type: ignore[no-untyped-def]
                                                                 admin_user, artifacts_dir: Path) -> None:
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/admin/scheduled-tasks/new")
    every_field = {label for labels in SCHEDULE_FIELDS.values() for label in labels}
    for schedule, labels in SCHEDULE_FIELDS.items():
        page.get_by_label("Schedule").select_option(label=schedule)
        for label in every_field:
            field = page.get_by_label(label, exact=True)
            expect(field).to_be_visible() if label in labels else expect(field).to_be_hidden()
    page.get_by_label("Schedule").select_option(label="Hourly")
    page.screenshot(path=str(artifacts_dir / "task-form-hourly.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts_dir / "task-form-hourly-390.png"), full_page=True)

    # Hourly at :05, with a stale bad value left in a field that does not apply: saved, and only the minute is read.
    page.get_by_label("Name").fill("Keep tokens fresh")
    page.get_by_label("Task").select_option(label="Datasource token keep-alive")
    page.get_by_label("Schedule").select_option(label="Every N minutes")
    page.get_by_label("Every N minutes").fill("0")
    page.get_by_label("Schedule").select_option(label="Hourly")
    page.get_by_label("Minutes past the hour").fill("5")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Scheduled task Keep tokens fresh saved.")).to_be_visible()
    expect(page.locator("#task-summary")).to_contain_text("Hourly at :05")
    expect(page.get_by_label("Minutes past the hour")).to_have_value("5")
    expect(page.get_by_label("At (HH:MM)")).to_be_hidden()


def test_import_settings_page_refuses_then_saves(  # type: ignore[no-untyped-def]
        page: Page, live_server: LiveServer, client: FlaskClient, admin_user, emulator: EmulatorHandle,
        artifacts_dir: Path) -> None:
    """The settings page (admin/import_settings.py over imports.settings): a refusal shows under its field, a save
    is confirmed and shown again; at 1280 and 390 px."""
    from tests.conftest import sign_in

    sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    datasource = authorized_datasource(client, emulator)
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{live_server.url}/admin/scheduled-tasks/imports/{datasource.id}")
        expect(page.locator("#sync-state")).to_contain_text("The next run reads the whole directory.")
        page.get_by_label("Members of chosen Office 365 groups").check()
        page.get_by_role("textbox", name="Office 365 groups", exact=True).fill("Legal")
        page.get_by_role("textbox", name="Group member sync").fill("Sales team U.S. Sales")
        page.get_by_role("button", name="Save import settings").click()
        expect(page.get_by_text("write Local group = Office 365 group")).to_be_visible()
        page.screenshot(path=str(artifacts_dir / f"import-settings-refused-{width}.png"), full_page=True)
        page.get_by_role("textbox", name="Group member sync").fill("Sales team = U.S. Sales")
        page.get_by_role("button", name="Save import settings").click()
        expect(page.get_by_text("Import settings saved.")).to_be_visible()
        expect(page.get_by_role("textbox", name="Office 365 groups", exact=True)).to_have_value("Legal")
        expect(page.get_by_role("textbox", name="Group member sync")).to_have_value("Sales team = U.S. Sales")
        page.screenshot(path=str(artifacts_dir / f"import-settings-saved-{width}.png"), full_page=True)
