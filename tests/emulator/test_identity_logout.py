"""docs/microsoft.md §1.8: sign-out, ending sessions, front-channel logout (emulator/identity/logout.py)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.emulator.support import PLAIN, REDIRECT, Browser, Control, jwt_claims, redirect_params


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
