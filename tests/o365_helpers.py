"""Drive the tenant emulator like a browser would (for tests that do not need a real one)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from emulator.server import EmulatorHandle, start_in_thread

CALLBACK_PATH = "/admin/datasources/authorize/callback"


def emulator_env(handle: EmulatorHandle) -> dict[str, str]:
    """The gateway's settings for this emulator: the same variables a real deployment sets."""
    return {"O365_AUTHORITY_HOST": handle.config["authority_host"], "GRAPH_API_URL": handle.config["graph_url"],
            "O365_CA_BUNDLE": handle.config["ca_bundle"], "O365_CLIENT_ID": handle.config["client_id"],
            "O365_CLIENT_SECRET": handle.config["client_secret"]}


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorHandle]:
    handle = start_in_thread(tmp_path / "emulator", redirect_uris=[
        f"http://localhost{CALLBACK_PATH}", f"http://127.0.0.1{CALLBACK_PATH}"])
    yield handle
    handle.stop()


def browser_session(handle: EmulatorHandle) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = handle.ca_path
    return session


def form_on_page(page: str, action_part: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the page's form posting to a URL containing `action_part`."""
    for match in re.finditer(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', page, re.S):
        action, body = unescape(match.group(1)), match.group(2)
        if action_part in action:
            fields = {unescape(n): unescape(v) for n, v in
                      re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body)}
            return action, fields
    raise AssertionError(f"no form posting to {action_part!r} on the page:\n{page[:2000]}")


def sign_in_at_microsoft(handle: EmulatorHandle, auth_uri: str, username: str, password: str = "demo",
                         *, accept_consent: bool = True, org_consent: bool = True,
                         session: requests.Session | None = None) -> requests.Response:
    """Sign in on the emulator's pages; returns the final response (a redirect to the gateway, or a page)."""
    session = session or browser_session(handle)
    page = session.get(auth_uri, allow_redirects=False)
    if page.status_code == 302:
        return page
    action, fields = form_on_page(page.text, "/login")
    fields.update(action="password", username=username, password=password)
    response = session.post(handle.base_url + action if action.startswith("/") else action, data=fields,
                            allow_redirects=False)
    if response.status_code == 200 and "/consent" in response.text:
        action, fields = form_on_page(response.text, "/consent")
        fields["action"] = "accept" if accept_consent else "cancel"
        if org_consent:
            fields["org"] = "1"
        response = session.post(handle.base_url + action if action.startswith("/") else action, data=fields,
                                allow_redirects=False)
    return response


def callback_path(response: requests.Response) -> str:
    """The gateway URL the emulator redirected to, as a path + query for the Flask test client."""
    assert response.status_code == 302, response.text[:2000]
    location = urlsplit(response.headers["Location"])
    assert location.path == CALLBACK_PATH, response.headers["Location"]
    return f"{location.path}?{location.query}"
