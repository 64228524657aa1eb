"""In a real Chromium set to Seattle's zone: the Scheduled tasks form offers the browser's time zone (never applies
it on its own), saves the task in it, and the pages name the zones they show times in."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer

pytestmark = pytest.mark.browser
SEATTLE = "America/Los_Angeles"


def _shoot(page: Page, artifacts_dir: Path, name: str) -> None:
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(artifacts_dir / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_the_browser_zone_is_offered_and_the_task_runs_in_it(browser: Browser, live_server: LiveServer,  # type: ignore[no-untyped-def]
                                                             admin_user, artifacts_dir: Path) -> None:
    context = browser.new_context(timezone_id=SEATTLE, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.goto(f"{live_server.url}/admin/scheduled-tasks/new")
    zone = page.get_by_label("Time zone")
    expect(zone).to_have_value("UTC")  # the deployment's default, preselected; the browser's is only offered
    offer = page.get_by_role("button", name="Use America/Los Angeles (this browser's time zone)")
    expect(offer).to_be_visible()
    page.get_by_label("Name").fill("Seattle mornings")
    page.get_by_label("Task", exact=True).select_option(label="Datasource token keep-alive")
    page.get_by_label("Schedule").select_option(label="Daily")
    page.get_by_label("At (HH:MM)").fill("09:00")
    page.get_by_label("Weekdays only (daily)").check()
    _shoot(page, artifacts_dir, "scheduled-task-form")
    offer.click()
    expect(zone).to_have_value(SEATTLE)
    expect(offer).to_have_count(0)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#task-summary")).to_contain_text("Daily at 09:00 America/Los_Angeles, weekdays only")
    expect(page.locator("#task-summary time")).to_have_text(  # the admin sees UTC (no preference yet), named
        re.compile(r"^\d{1,2}\s\w{3}\s\d{4},\s17:00\sUTC$"))

    page.goto(f"{live_server.url}/preferences")
    expect(page.get_by_label("Time zone")).to_have_value("")  # the gateway's default until the user chooses
    _shoot(page, artifacts_dir, "preferences")
    page.get_by_role("button", name="Use America/Los Angeles (this browser's time zone)").click()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Times are shown in America/Los_Angeles.")).to_be_visible()
    page.goto(f"{live_server.url}/admin/scheduled-tasks")
    row = page.get_by_role("row").filter(has_text="Seattle mornings")
    expect(row.locator("time")).to_have_text(re.compile(r"^\d{1,2}\s\w{3}\s\d{4},\s09:00\sPST$"))
    _shoot(page, artifacts_dir, "scheduled-tasks")
    page.goto(f"{live_server.url}/")
    expect(page.locator("#time-zone")).to_contain_text("America/Los_Angeles")
    expect(page.locator("#sessions time").first).to_have_text(re.compile(r"\sP[SD]T$"))
    _shoot(page, artifacts_dir, "home-time-zone")
    assert errors == [], errors
    context.close()
