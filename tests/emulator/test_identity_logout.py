"""docs/microsoft.md §1.8 (sign-out, front-channel logout) and §2 (admin consent endpoint)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.emulator.conftest import ADMIN, GRAPH, PLAIN, REDIRECT, Browser, Control, jwt_claims, redirect_params


@pytest.fixture
def logout_listener() -> Iterator[tuple[str, list[str]]]:
    """A tiny HTTP app that records front-channel logout calls."""
    calls: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            calls.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sso/frontchannel-logout", calls
    server.shutdown()
    server.server_close()


def test_logout_ends_the_session_and_redirects_to_a_registered_uri(browser: Browser, emu) -> None:
    params = browser.code(PLAIN)
    assert "code" in params
    assert "code" in redirect_params(browser.authorize(prompt="none"))
    resp = browser.http.get(f"{emu.base_url}/{emu.tenant_id}/oauth2/v2.0/logout",
                            params={"post_logout_redirect_uri": REDIRECT, "state": "bye 1"}, allow_redirects=False)
    assert resp.status_code == 302
    assert resp.headers["Location"] == REDIRECT + "?state=bye+1"
    assert "emu_session=;" in resp.headers["Set-Cookie"]
    again = redirect_params(browser.authorize(prompt="none"))
    assert again["error"] == "login_required"


def test_logout_without_registered_target_shows_signed_out_page(browser: Browser, emu) -> None:
    browser.code(PLAIN)
    resp = browser.http.post(f"{emu.base_url}/{emu.tenant_id}/oauth2/v2.0/logout",
                             data={"post_logout_redirect_uri": "https://evil.example/"}, allow_redirects=False)
    assert resp.status_code == 200 and "You signed out of your account" in resp.text
    resp = browser.http.get(f"{emu.base_url}/common/oauth2/v2.0/logout", allow_redirects=False)
    assert resp.status_code == 200 and "You signed out" in resp.text


def test_front_channel_logout_is_called_with_sid(emu, control: Control, logout_listener) -> None:
    url, calls = logout_listener
    client = control("POST", "/clients", {"name": "FCL app", "redirect_uris": [REDIRECT],
                                          "front_channel_logout_url": url}, expect=201)
    browser = Browser(emu).use_client(client)
    params = browser.code(PLAIN, scope="openid profile")
    resp = browser.http.get(f"{emu.base_url}/{emu.tenant_id}/oauth2/v2.0/logout", allow_redirects=False)
    assert resp.status_code == 200
    assert len(calls) == 1
    query = dict(parse_qsl(urlsplit(calls[0]).query))
    assert urlsplit(calls[0]).path == "/sso/frontchannel-logout"
    assert query["sid"] == params["session_state"]
    assert query["iss"] == f"{emu.base_url}/{emu.tenant_id}/v2.0"


def test_logout_by_id_token_hint_without_cookie(emu, control: Control, logout_listener) -> None:
    url, calls = logout_listener
    client = control("POST", "/clients", {"name": "FCL app 2", "redirect_uris": [REDIRECT],
                                          "front_channel_logout_url": url}, expect=201)
    browser = Browser(emu).use_client(client)
    id_token = browser.redeem(browser.code(PLAIN, scope="openid profile")["code"]).json()["id_token"]
    other_agent = Browser(emu)
    resp = other_agent.http.get(f"{emu.base_url}/{emu.tenant_id}/oauth2/v2.0/logout",
                                params={"id_token_hint": id_token}, allow_redirects=False)
    assert resp.status_code == 200 and len(calls) == 1
    assert dict(parse_qsl(urlsplit(calls[0]).query))["sid"] == jwt_claims(id_token)["sid"]
    assert redirect_params(browser.authorize(prompt="none"))["error"] == "login_required"


def _adminconsent(browser: Browser, client: dict, tenant: str | None = None, **extra: str):
    params = {"client_id": client["client_id"], "redirect_uri": REDIRECT, "state": "ac-1",
              "scope": f"{GRAPH}.default", **extra}
    return browser.http.get(f"{browser.emu.base_url}/{tenant or browser.tenant}/v2.0/adminconsent",
                            params=params, allow_redirects=False)


def test_admin_consent_success(emu, fresh_client: dict) -> None:
    browser = Browser(emu).use_client(fresh_client)
    page = _adminconsent(browser, fresh_client)
    assert page.status_code == 200 and "administrator" in page.text
    page = browser.signin(page, ADMIN)
    assert page.status_code == 200 and "all users" in page.text
    params = redirect_params(browser.consent(page))
    assert params["admin_consent"] == "True" and params["tenant"] == emu.tenant_id and params["state"] == "ac-1"
    assert f"{GRAPH}User.Read.All" in params["scope"].split()
    # A plain user now gets admin-only scopes without any consent page.
    user = Browser(emu).use_client(fresh_client)
    resp = user.signin(user.authorize(scope=f"openid {GRAPH}Group.ReadWrite.All"), PLAIN)
    assert "code" in redirect_params(resp)


def test_admin_consent_failures(emu, fresh_client: dict) -> None:
    plain = Browser(emu).use_client(fresh_client)
    params = redirect_params(plain.signin(_adminconsent(plain, fresh_client), PLAIN))
    assert params["admin_consent"] == "True" and params["error"] == "access_denied" and params["state"] == "ac-1"
    admin = Browser(emu).use_client(fresh_client)
    page = admin.signin(_adminconsent(admin, fresh_client), ADMIN)
    params = redirect_params(admin.consent(page, accept=False))
    assert params["admin_consent"] == "True" and params["error"] == "access_denied"
    assert params["error_description"].startswith("AADSTS65004:")
    common = _adminconsent(admin, fresh_client, tenant="common")
    assert common.status_code == 400 and "Location" not in common.headers
    bad = _adminconsent(admin, fresh_client, redirect_uri="https://evil.example/")
    assert bad.status_code == 400 and "AADSTS50011" in bad.text
