"""The seed's journey in a real Chromium against the emulator: Add new, Office 365, Save, Authorize in the pop-up,
Connection test succeeded, ready, Re-Authorize, Security, Close, delete."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from emulator.server import EmulatorHandle, start_in_thread
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from tests.o365_helpers import CALLBACK_PATH

pytestmark = pytest.mark.browser


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorHandle]:
    """Two tenants (Contoso first, Fabrikam), for Change tenant."""
    handle = start_in_thread(tmp_path / "emulator", tenants=2, redirect_uris=[
        f"http://{host}{CALLBACK_PATH}" for host in ("localhost", "127.0.0.1")])
    yield handle
    handle.stop()


def _sign_in_at_microsoft(popup: Page, email: str = "admin@contoso.example", *, closes: bool = False) -> None:
    """Sign in and consent; with closes=True, wait for the pop-up to close (the listener is set before the click)."""
    popup.get_by_label("Email, phone, or Skype").fill(email)
    popup.get_by_label("Password").fill("demo")
    popup.get_by_role("button", name="Sign in").click()
    popup.get_by_label("Consent on behalf of your organization").check()
    if not closes:
        popup.get_by_role("button", name="Accept").click()
        return
    with popup.expect_event("close", timeout=60_000):
        popup.get_by_role("button", name="Accept").click()


def _click_popup_button(page: Page, name: str) -> None:
    """Click Authorize or Change tenant once the page's script has wired its form (a slow load clicks too early)."""
    page.locator("form[target='o365-authorize'][data-popup-ready]").first.wait_for(state="attached")
    page.get_by_role("button", name=name, exact=True).click()


def test_office365_datasource_journey(page: Page, live_server: LiveServer, admin_user,  # type: ignore[no-untyped-def]
                                      artifacts_dir: Path) -> None:
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/admin/")
    page.get_by_role("main").get_by_role("link", name="Data sources").click()
    page.get_by_role("link", name="+ Add new").click()
    page.get_by_role("link", name="Office 365").click()
    page.get_by_label("Display name").fill("Contoso directory")
    expect(page.get_by_label("Read all users' full profiles")).to_be_checked()
    expect(page.get_by_label("Read all users' full profiles")).to_be_disabled()
    page.get_by_label("Read and write users & groups").check()
    page.get_by_label("Enable Azure OpenID Connect Single-Sign-On").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Details saved successfully")).to_be_visible()
    expect(page.locator(".datasource-status")).to_have_text("incomplete")

    with page.expect_popup() as popup_info:
        _click_popup_button(page, "Authorize")
    popup = popup_info.value
    _sign_in_at_microsoft(popup, closes=True)
    expect(page.get_by_text("Connection test succeeded")).to_be_visible()
    expect(page.locator(".datasource-status")).to_have_text("ready")
    expect(page.get_by_role("button", name="Re-Authorize")).to_be_visible()
    expect(page.locator("#grant-details")).to_contain_text("admin@contoso.example")
    page.screenshot(path=str(artifacts_dir / "datasource-ready.png"), full_page=True)

    page.get_by_role("link", name="Security").click()
    form = page.locator("#security-form")
    expect(form.locator("ul, li")).to_have_count(0)  # checkbox groups, not bulleted lists
    expect(form.get_by_role("group", name="Connection administrators: roles")).to_be_visible()
    expect(form.get_by_role("group", name="Connection users: local groups")).to_contain_text("No local groups yet")
    save, close = form.get_by_role("button", name="Save security"), form.get_by_role("link", name="Close")
    expect(close).to_be_visible()
    assert abs(save.bounding_box()["y"] - close.bounding_box()["y"]) < 2  # side by side
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(artifacts_dir / f"datasource-security-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 720})
    page.get_by_label("Connection users: users").fill("helpdesk@example.com")
    page.get_by_role("button", name="Save security").click()
    expect(page.get_by_text("Details saved successfully")).to_be_visible()
    page.get_by_role("link", name="Close").click()
    row = page.get_by_role("row", name="Contoso directory")
    expect(row).to_contain_text("ready")
    expect(row).to_contain_text("Office 365")
    bin_icon = row.get_by_role("link", name="Delete Contoso directory").locator("svg use")
    # the icon is drawn once the sprite (shipped with the page) has loaded
    page.wait_for_function("use => use.getBBox().width > 0", arg=bin_icon.element_handle())
    page.screenshot(path=str(artifacts_dir / "datasources-list.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts_dir / "datasources-list-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 720})
    row.get_by_role("link", name="Delete Contoso directory").click()
    expect(page.locator("#dependents")).to_contain_text("Single sign-on")
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Contoso directory deleted, with its stored tokens.")).to_be_visible()
    expect(page.get_by_text("No data sources yet")).to_be_visible()


def test_authorize_without_popups_uses_the_same_window(page: Page, live_server: LiveServer, admin_user) -> None:  # type: ignore[no-untyped-def]
    page.add_init_script("window.open = () => null;")  # what a pop-up blocker does
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/admin/datasources/new/office365")
    page.get_by_label("Display name").fill("Same window")
    page.get_by_role("button", name="Save").click()
    _click_popup_button(page, "Authorize")
    _sign_in_at_microsoft(page)
    expect(page.get_by_text("Connection test succeeded")).to_be_visible()
    expect(page.locator(".datasource-status")).to_have_text("ready")


def _sign_in_locally(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _no_sideways_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_operations_panel_lists_the_seeds_ten_operations_at_desktop_and_phone_width(  # type: ignore[no-untyped-def]
        page: Page, live_server: LiveServer, admin_user, artifacts_dir: Path) -> None:
    from core.extensions import db
    from core.models import Datasource

    datasource = Datasource(name="Contoso 365", status=Datasource.READY, tenant_id="tid", tenant_name="Contoso")
    db.session.add(datasource)
    db.session.commit()
    _sign_in_locally(page, live_server.url)
    names = ["User List", "Find Users", "Group List", "Find Groups", "Create Group", "Add User to Group",
             "Remove User From Group", "Licence Plan List", "Assign Licence to User", "Remove Licence from User"]
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{live_server.url}/admin/datasources/{datasource.id}")
        panel = page.locator("#operations")
        for name in names:
            expect(panel.get_by_role("link", name=name, exact=True)).to_be_visible()
        assert _no_sideways_scroll(page)
        page.screenshot(path=str(artifacts_dir / f"datasource-operations-{width}.png"), full_page=True)
    page.locator("#operations").get_by_role("link", name="Create Group", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/admin/datasources/{datasource.id}/o365/groups/new")


def test_change_tenant_in_the_popup_then_confirm_single_sign_on(  # type: ignore[no-untyped-def]
        page: Page, live_server: LiveServer, admin_user, artifacts_dir: Path) -> None:
    from core.extensions import db
    from core.models import Datasource
    from sso.models import SsoProvider

    _sign_in_locally(page, live_server.url)
    page.goto(f"{live_server.url}/admin/datasources/new/office365")
    page.get_by_label("Display name").fill("Directory")
    page.get_by_label("Enable Azure OpenID Connect Single-Sign-On").check()
    page.get_by_role("button", name="Save").click()
    with page.expect_popup() as popup_info:
        _click_popup_button(page, "Authorize")
    _sign_in_at_microsoft(popup_info.value)
    expect(page.get_by_text("Connection test succeeded")).to_be_visible()
    datasource = db.session.scalars(db.select(Datasource)).one()
    db.session.add(SsoProvider(name="directory", kind=SsoProvider.OFFICE365, datasource_id=datasource.id))
    db.session.commit()

    page.locator("#change-tenant summary").click()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert _no_sideways_scroll(page)
        page.screenshot(path=str(artifacts_dir / f"datasource-change-tenant-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    with page.expect_popup() as popup_info:
        _click_popup_button(page, "Change tenant")
    _sign_in_at_microsoft(popup_info.value, "admin@fabrikam.example", closes=True)
    expect(page.get_by_text("Tenant changed from Contoso to Fabrikam.")).to_be_visible()
    expect(page.locator("#sso-confirm")).to_contain_text("its provider directory is disabled")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert _no_sideways_scroll(page)
        page.screenshot(path=str(artifacts_dir / f"datasource-tenant-changed-{width}.png"), full_page=True)
    page.get_by_role("button", name="Confirm tenant for single sign-on").click()
    expect(page.get_by_text("Single sign-on through Directory is on again: people of Fabrikam can sign in.")
           ).to_be_visible()
    expect(page.locator("#sso-confirm")).to_have_count(0)


def test_office365_provider_without_a_name_and_the_sign_in_buttons(  # type: ignore[no-untyped-def]
        page: Page, live_server: LiveServer, admin_user, artifacts_dir: Path) -> None:
    from core.extensions import db
    from core.models import Datasource
    from tests.sso_helpers import enable_sso

    for name, tid in (("Contoso 365", "t1"), ("Fabrikam", "t2")):
        db.session.add(Datasource(name=name, sso_enabled=True, status=Datasource.READY, tenant_id=tid))
    db.session.commit()
    enable_sso()
    _sign_in_locally(page, live_server.url)
    page.goto(f"{live_server.url}/admin/sso")
    form = page.locator("#add-office365")
    expect(form.get_by_label("Name", exact=True)).to_have_count(0)
    form.get_by_label("Data source").select_option(label="Contoso 365")
    form.get_by_role("button", name="Add Office 365 provider").click()
    expect(page.get_by_text("Provider contoso-365 added.")).to_be_visible()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.locator("#add-office365").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts_dir / f"sso-add-office365-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{live_server.url}/login")
    expect(page.get_by_role("link", name="Sign in with Office 365", exact=True)).to_be_visible()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert _no_sideways_scroll(page)
        page.screenshot(path=str(artifacts_dir / f"sign-in-office365-{width}.png"), full_page=True)

    from sso.providers import add_office365_provider

    add_office365_provider(None, db.session.scalars(db.select(Datasource).filter_by(name="Fabrikam")).one())
    db.session.commit()
    page.reload()
    expect(page.get_by_role("link", name="Sign in with Office 365 (Contoso 365)")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in with Office 365 (Fabrikam)")).to_be_visible()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert _no_sideways_scroll(page)
        page.screenshot(path=str(artifacts_dir / f"sign-in-two-office365-{width}.png"), full_page=True)


def test_test_connection_after_consent_removed_says_needs_reauthorization(  # type: ignore[no-untyped-def]
        page: Page, live_server: LiveServer, admin_user, artifacts_dir: Path, emulator: EmulatorHandle) -> None:
    import requests

    _sign_in_locally(page, live_server.url)
    page.goto(f"{live_server.url}/admin/datasources/new/office365")
    page.get_by_label("Display name").fill("Contoso directory")
    page.get_by_role("button", name="Save").click()
    with page.expect_popup() as popup_info:
        _click_popup_button(page, "Authorize")
    _sign_in_at_microsoft(popup_info.value)
    expect(page.get_by_text("Connection test succeeded")).to_be_visible()
    removed = requests.post(f"{emulator.base_url}/_emulator/grants/revoke", json={}, verify=emulator.ca_path,
                            headers={"Authorization": f"Bearer {emulator.config['control_key']}"}, timeout=10)
    assert removed.status_code < 300, removed.text
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_text("Connection test failed: this data source needs re-authorization. AADSTS65001: "
                            "Consent for the gateway was removed in Office 365. Click Re-Authorize.")).to_be_visible()
    expect(page.locator(".datasource-status")).to_have_text("needs re-authorization")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert _no_sideways_scroll(page)
        page.screenshot(path=str(artifacts_dir / f"datasource-test-needs-reauthorization-{width}.png"),
                        full_page=True)
