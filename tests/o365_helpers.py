"""Drive the tenant emulator like a browser would (for tests that do not need a real one)."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import requests
from flask.testing import FlaskClient

from core.extensions import db
from core.models import Datasource
from emulator.server import EmulatorHandle
from tests.conftest import CALLBACK_PATH, csrf_token

ADMIN_UPN = "admin@contoso.example"  # the emulator's Contoso Global Administrator


def emulator_env(handle: EmulatorHandle) -> dict[str, str]:
    """The gateway's settings for this emulator: the same variables a real deployment sets."""
    return {"O365_AUTHORITY_HOST": handle.config["authority_host"], "GRAPH_API_URL": handle.config["graph_url"],
            "O365_CA_BUNDLE": handle.config["ca_bundle"], "O365_CLIENT_ID": handle.config["client_id"],
            "O365_CLIENT_SECRET": handle.config["client_secret"]}


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


def create_datasource(client: FlaskClient, name: str = "Contoso 365", read_write: bool = False,  # type: ignore[no-untyped-def]
                      sso: bool = False):
    """Save a new Office 365 datasource through its page (not authorized yet)."""
    data = {"csrf_token": csrf_token(client, "/admin/datasources/new/office365"), "name": name}
    if read_write:
        data["read_write"] = "y"
    if sso:
        data["sso_enabled"] = "y"
    return client.post("/admin/datasources/new/office365", data=data)


def datasource_named(name: str = "Contoso 365") -> Datasource:
    db.session.expire_all()
    return db.session.scalars(db.select(Datasource).filter_by(name=name)).one()


def start_authorization(client: FlaskClient, datasource: Datasource) -> str:
    token = csrf_token(client, f"/admin/datasources/{datasource.id}")
    response = client.post(f"/admin/datasources/{datasource.id}/authorize", data={"csrf_token": token})
    assert response.status_code == 302
    return response.headers["Location"]


def authorize_datasource(client: FlaskClient, emulator: EmulatorHandle, datasource: Datasource,
                         username: str = ADMIN_UPN) -> str:
    """Authorize `datasource` as `username` at the emulator; the callback page's text."""
    auth_uri = start_authorization(client, datasource)
    page = client.get(callback_path(sign_in_at_microsoft(emulator, auth_uri, username)))
    assert page.status_code == 200
    return page.get_data(as_text=True)
