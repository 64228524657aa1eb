"""In Chromium, with a job worker running: paste users, preview (counts and only the users that would change),
queue, watch the progress bar, see a partial outcome when Graph keeps failing one chunk, Retry the failed, and find
both runs in the audit log. Screenshots at 1280 and 390 px."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from bulk import job as bulk_job
from core.models import Datasource
from tests.bulk.test_bulk_service import users
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from tests.imports.helpers import use_test_queue
from tests.o365_ops_helpers import Tenant

pytestmark = pytest.mark.browser


def _shots(page: Page, artifacts_dir: Path, name: str) -> None:
    page.screenshot(path=str(artifacts_dir / f"{name}-1280.png"), full_page=True)
    page.screenshot(path=str(artifacts_dir / f"{name}-1280-top.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "scrolls sideways at 390 px"
    page.screenshot(path=str(artifacts_dir / f"{name}-390.png"), full_page=True)
    page.screenshot(path=str(artifacts_dir / f"{name}-390-top.png"))
    page.set_viewport_size({"width": 1280, "height": 900})


def test_preview_queue_progress_results_and_retry_the_failed(
        page: Page, live_server: LiveServer, app: Flask, ds: Datasource, tenant: Tenant, tmp_path: Path,
        database_url: str, artifacts_dir: Path) -> None:
    from jobs.queue import start_embedded_consumer, stop_embedded_consumer

    app.config["BULK_START_CONCURRENCY"] = 1
    huey = use_test_queue(app, tmp_path, database_url)
    start_embedded_consumer(app, workers=1)
    group = tenant.group("Legal")
    chosen = [u for u in users(tenant, 50) if u not in tenant.members(group)][:45]
    upns = [tenant.one("SELECT user_principal_name FROM users WHERE id = ?", u) for u in chosen]
    try:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/login")
        page.get_by_label("Email").fill(ADMIN_EMAIL)
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{live_server.url}/admin/datasources/{ds.id}/o365/bulk")
        page.get_by_role("link", name="Add or remove many users").click()
        page.wait_for_load_state()
        page.locator("#group_id-search").fill("Leg")
        page.get_by_role("option", name="Legal").first.click()
        page.get_by_label("Users").fill("\n".join([*upns, "nobody@contoso.example"]))
        page.get_by_role("button", name="Preview").click()

        expect(page.locator("#bulk-summary")).to_contain_text("45 will be added; 1 not found in the tenant")
        expect(page.locator("#bulk-items li")).to_have_count(45)
        assert not tenant.members(group) & set(chosen)  # the preview wrote nothing
        _shots(page, artifacts_dir, "bulk-preview")

        # Graph fails the first chunk of 20 every time it is tried, then recovers: 25 added, 20 failed
        tenant.fault(kind="error", status=503, method="PATCH", path="/groups/", count=3 * bulk_job.MAX_ATTEMPTS)
        page.get_by_role("button", name="Queue: add to group for 45 users").click()
        expect(page.locator("#bulk-bar")).to_be_visible()
        expect(page.locator("#bulk-result")).to_have_text("partial: 25 added, 20 failed", timeout=60_000)
        assert page.locator("#bulk-bar").evaluate("el => el.value === el.max && el.max === 45")
        _shots(page, artifacts_dir, "bulk-partial")
        page.get_by_role("link", name="Failed").click()
        expect(page.locator("#bulk-items li")).to_have_count(20)
        expect(page.locator("#bulk-items")).to_contain_text("did not answer properly")
        page.reload()  # the results survive a reload
        expect(page.locator("#bulk-items li")).to_have_count(20)

        page.get_by_role("button", name="Retry the failed (20)").click()
        expect(page.locator("#bulk-result")).to_have_text("success: 20 added", timeout=60_000)
        expect(page.get_by_role("link", name="retry of")).to_be_visible()
        _shots(page, artifacts_dir, "bulk-retried")
        assert tenant.members(group) >= set(chosen)

        page.goto(f"{live_server.url}/admin/audit?operation=Bulk%3A+Add+to+group")
        expect(page.locator("#audit-table tbody tr")).to_have_count(2)
        expect(page.locator("#audit-table")).to_contain_text("partial: 25 added, 20 failed")
        expect(page.locator("#audit-table")).to_contain_text("success: 20 added")
    finally:
        stop_embedded_consumer()
        huey.flush()
