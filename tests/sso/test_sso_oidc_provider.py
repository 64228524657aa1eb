"""The generic-provider path against an independent, OpenID Certified provider: panva's oidc-provider (node),
in Chromium: sign in (PKCE enforced by the provider), /auth/verify, back-channel logout from the provider, and
RP-initiated sign-out with id_token_hint."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from core.extensions import db
from core.models import User
from sso.sessions import store
from tests.conftest import LiveServer
from tests.sso_helpers import OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OidcProviderProcess, enable_sso

pytestmark = pytest.mark.browser
OIDC_OUTPUT: list[list[str]] = []


@pytest.fixture
def app_env() -> dict[str, str]:
    """oidc-provider listens on 127.0.0.1 over http: a development setting, made explicit."""
    return {"SSO_ALLOW_PRIVATE_PROVIDERS": "1"}


@pytest.fixture
def oidc(app, live_server: LiveServer) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    from sso.providers import add_generic_provider

    provider = OidcProviderProcess(live_server.url, "panva")
    OIDC_OUTPUT.append(provider.output)
    try:
        enable_sso(create_users=True)
        add_generic_provider("panva", provider.issuer, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
                             scopes="openid profile email")
        db.session.commit()
        yield live_server
    finally:
        provider.stop()


def _sign_in_at_provider(page: Page, login: str) -> None:
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any")
    page.locator("button[type=submit]").click()
    page.locator("button[type=submit]").click()  # consent: Continue


def test_sign_in_verify_and_back_channel_logout(browser: Browser, oidc: LiveServer) -> None:
    page = browser.new_context(ignore_https_errors=True).new_page()
    page.goto(f"{oidc.url}/login")
    page.get_by_role("link", name="Sign in with panva").click()
    _sign_in_at_provider(page, "alice")
    expect(page.get_by_role("heading", name="Welcome, User alice")).to_be_visible()
    verify = page.request.get(f"{oidc.url}/auth/verify")
    assert verify.status == 200 and verify.headers["x-auth-request-email"] == "alice@example.net"
    user = db.session.scalars(db.select(User).filter_by(email="alice@example.net")).one()
    assert len(store().for_user(user.id)) == 1

    # The user signs out at the provider itself: its back-channel logout_token ends the gateway session.
    issuer = db.session.execute(db.text("SELECT issuer FROM sso_providers")).scalar_one()
    page.goto(f"{issuer}/session/end")
    page.locator("button[value=yes]").click()
    expect(page.locator("body")).to_contain_text("ign")  # the provider's "signed out" page
    deadline = time.monotonic() + 5
    while store().for_user(user.id) and time.monotonic() < deadline:  # the provider calls back asynchronously
        time.sleep(0.1)
    assert store().for_user(user.id) == [], "".join(OIDC_OUTPUT[-1][-4:])
    assert page.request.get(f"{oidc.url}/auth/verify").status == 401
    page.context.close()


def test_rp_initiated_sign_out_with_id_token_hint(browser: Browser, oidc: LiveServer) -> None:
    page = browser.new_context(ignore_https_errors=True).new_page()
    page.goto(f"{oidc.url}/sso/login/panva?next=/sessions")
    _sign_in_at_provider(page, "bob")
    expect(page.get_by_role("heading", name="My sessions")).to_be_visible()
    page.goto(f"{oidc.url}/")
    page.get_by_role("button", name="Sign out").click()  # the navigation bar's, the only one
    expect(page).to_have_url(re.compile(r"/session/end"))
    page.locator("button[value=yes]").click()
    expect(page.get_by_role("heading", name="You have been signed out")).to_be_visible()
    assert page.request.get(f"{oidc.url}/auth/verify").status == 401
    page.context.close()
