"""Step-up (#14): a route that needs Entra authentication context c1, or a sign-in no older than N minutes, sends
the signed-in person through exactly one more sign-in (the OIDC `claims` parameter asking `acrs`, and/or
`max_age`); the callback checks the new ID token's `acrs` / `auth_time` before the session keeps them; /auth/verify
reads the session, so editing a URL skips nothing. Against the tenant emulator (Office 365) and a generic OpenID
provider; through the Flask test client."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from emulator.server import EmulatorHandle
from policies import service as policies
from tests.o365_helpers import browser_session, emulator_env, form_on_page, sign_in_at_microsoft
from tests.sso_helpers import (
    FakeProvider,
    add_fake_provider,
    add_office365_provider,
    enable_sso,
    ready_datasource,
    start_sign_in,
    stored_identity,
    verify_status,
)

ADELE = "adele.vance@contoso.example"
REPORTS = "https://finance.example.com/reports/q4"
PAYROLL = "https://finance.example.com/payroll/2026"
OPEN = "https://finance.example.com/news"
DOCUMENT = {
    "hosts": [{"host": "finance.example.com", "default": "signed_in"}],
    "rules": [
        {"id": "r-reports", "name": "Finance reports", "enabled": True, "host": "finance.example.com",
         "paths": ["/reports/"], "methods": [], "networks": [], "action": "allow",
         "criteria": {"auth_context": "c1"}},
        {"id": "r-payroll", "name": "Payroll", "enabled": True, "host": "finance.example.com",
         "paths": ["/payroll/"], "methods": [], "networks": [], "action": "allow",
         "criteria": {"max_auth_age_minutes": 15}},
    ],
}


@pytest.fixture
def app_env(sso_emulator: EmulatorHandle) -> dict[str, str]:
    return {**emulator_env(sso_emulator), "ALLOWED_REDIRECT_DOMAINS": ".example.com",
            "SSO_ALLOW_PRIVATE_PROVIDERS": "1"}


@pytest.fixture
def contoso(app: Flask, sso_emulator: EmulatorHandle):  # type: ignore[no-untyped-def]
    enable_sso(create_users=True)
    policies.save(DOCUMENT, actor="test", note="step-up routes")
    return add_office365_provider(ready_datasource(sso_emulator))


def control(emulator: EmulatorHandle, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(method, f"{emulator.base_url}/_emulator/{path}", json=body, verify=emulator.ca_path,
                                headers={"Authorization": f"Bearer {emulator.config['control_key']}"}, timeout=10)
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


class Person:
    """One browser: the gateway's test client and the emulator's cookies (its emu_session)."""

    def __init__(self, client: FlaskClient, emulator: EmulatorHandle) -> None:
        self.client, self.emulator = client, emulator
        self.browser = browser_session(emulator)
        self.idp_visits = 0  # redirects to the identity provider

    def sign_in(self, upn: str = ADELE) -> None:
        auth_url = start_sign_in(self.client, "contoso")
        self.idp_visits += 1
        response = sign_in_at_microsoft(self.emulator, auth_url, upn, org_consent=False, session=self.browser)
        assert self.callback(response).status_code == 302

    def callback(self, response: requests.Response):  # type: ignore[no-untyped-def]
        assert response.status_code == 302, response.text[:1000]
        location = urlsplit(response.headers["Location"])
        assert location.path == "/sso/callback", response.headers["Location"]
        return self.client.get(f"{location.path}?{location.query}")

    def verify(self, url: str) -> int:
        return verify_status(self.client, url)

    def start(self, url: str):  # type: ignore[no-untyped-def]
        return self.client.get("/auth/start?" + urlencode({"rd": url}))

    def at_idp(self, auth_url: str, *, approve: bool = True) -> requests.Response:
        """Follow the authorize redirect in the emulator's browser; approve its extra (MFA) step if shown."""
        self.idp_visits += 1
        page = self.browser.get(auth_url, allow_redirects=False)
        if page.status_code == 200 and "Approve sign-in request" in page.text:
            action, fields = form_on_page(page.text, "/mfa")
            fields["action"] = "approve" if approve else "cancel"
            page = self.browser.post(self.emulator.base_url + action, data=fields, allow_redirects=False)
        return page


def test_auth_context_step_up_is_one_extra_sign_in_and_acrs_is_checked(
        client: FlaskClient, contoso, sso_emulator: EmulatorHandle) -> None:  # type: ignore[no-untyped-def]
    person = Person(client, sso_emulator)
    person.sign_in()
    assert person.verify(OPEN) == 200  # no step-up where the rules do not ask for one
    assert person.start(OPEN).headers["Location"] == OPEN
    assert person.verify(REPORTS) == 401  # step-up required
    # redirect mode: the proxy's 302 to /auth/start, then /auth/start's one redirect to the provider
    to_start = client.get("/auth/verify?redirect=1", headers={"X-Original-URL": REPORTS})
    assert to_start.status_code == 302
    location = urlsplit(to_start.headers["Location"])
    assert location.path == "/auth/start" and parse_qs(location.query)["rd"] == [REPORTS]
    start = client.get(f"{location.path}?{location.query}")
    assert start.status_code == 302
    auth_url = start.headers["Location"]
    assert auth_url.startswith(sso_emulator.base_url)
    query = {k: v[0] for k, v in parse_qs(urlsplit(auth_url).query).items()}
    assert json.loads(query["claims"]) == {"id_token": {"acrs": {"essential": True, "values": ["c1"]}}}
    assert query["login_hint"] == ADELE and "max_age" not in query
    back = person.callback(person.at_idp(auth_url))
    assert back.status_code == 302 and back.headers["Location"] == REPORTS  # straight back: one extra round trip
    assert person.idp_visits == 2
    assert person.verify(REPORTS) == 200
    identity = stored_identity(client)
    assert identity["acrs"] == ["c1"] and identity["provider"] == "contoso"
    assert person.start(REPORTS).headers["Location"] == REPORTS  # satisfied: no further sign-in


def test_a_token_without_the_requested_acrs_is_refused(client: FlaskClient, contoso,  # type: ignore[no-untyped-def]
                                                       sso_emulator: EmulatorHandle) -> None:
    person = Person(client, sso_emulator)
    person.sign_in()
    control(sso_emulator, "POST", "id-token-claims", {"claims": {"acrs": None}})
    try:
        refused = person.callback(person.at_idp(person.start(REPORTS).headers["Location"]))
    finally:
        control(sso_emulator, "DELETE", "id-token-claims")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 403 and "Extra sign-in step failed" in page
    assert "needs authentication context c1" in page and "did not confirm it" in page
    assert person.verify(REPORTS) != 200 and person.verify(OPEN) == 200  # still signed in, still not allowed
    assert stored_identity(client)["acrs"] == []


def test_max_age_asks_for_a_fresh_sign_in_and_auth_time_is_checked(
        client: FlaskClient, contoso, sso_emulator: EmulatorHandle) -> None:  # type: ignore[no-untyped-def]
    person = Person(client, sso_emulator)
    person.sign_in()
    assert person.verify(PAYROLL) == 200  # signed in just now
    old = time.time() - 3600  # the provider's session began an hour ago (kept by the emulator's browser session)
    sso_emulator.app.extensions["emulator.store"].conn().execute("UPDATE sessions SET created = ?", (old,))
    person.sign_in()  # a plain sign-in reuses that session: auth_time is an hour old
    assert abs(stored_identity(client)["auth_time"] - old) < 5
    assert person.verify(PAYROLL) != 200

    auth_url = person.start(PAYROLL).headers["Location"]
    query = parse_qs(urlsplit(auth_url).query)
    assert query["max_age"] == ["900"] and "claims" not in query
    page = person.at_idp(auth_url)
    assert page.status_code == 200 and 'name="password"' in page.text  # the provider asks to sign in again
    action, fields = form_on_page(page.text, "/login")
    fields.update(action="password", username=ADELE, password="demo")
    back = person.callback(person.browser.post(sso_emulator.base_url + action, data=fields, allow_redirects=False))
    assert back.headers["Location"] == PAYROLL
    assert time.time() - stored_identity(client)["auth_time"] < 60 and person.verify(PAYROLL) == 200


def test_an_old_auth_time_in_the_step_up_token_is_refused(client: FlaskClient, contoso,  # type: ignore[no-untyped-def]
                                                          sso_emulator: EmulatorHandle) -> None:
    person = Person(client, sso_emulator)
    person.sign_in()
    stale = int(time.time()) - 7200
    sso_emulator.app.extensions["emulator.store"].conn().execute("UPDATE sessions SET created = ?", (stale,))
    person.sign_in()
    control(sso_emulator, "POST", "id-token-claims", {"claims": {"auth_time": stale}})
    try:
        page = person.at_idp(person.start(PAYROLL).headers["Location"])
        action, fields = form_on_page(page.text, "/login")
        fields.update(action="password", username=ADELE, password="demo")
        refused = person.callback(person.browser.post(sso_emulator.base_url + action, data=fields,
                                                      allow_redirects=False))
    finally:
        control(sso_emulator, "DELETE", "id-token-claims")
    assert refused.status_code == 403
    assert "needs a sign-in from the last 15 minutes" in refused.get_data(as_text=True)
    assert person.verify(PAYROLL) != 200


def test_editing_urls_skips_nothing(client: FlaskClient, contoso,  # type: ignore[no-untyped-def]
                                    sso_emulator: EmulatorHandle) -> None:
    person = Person(client, sso_emulator)
    person.sign_in()
    # going "back" to the app by another way, or asking /auth/start for another URL, grants nothing
    assert person.start(OPEN).headers["Location"] == OPEN
    assert person.verify(REPORTS) != 200
    # a forged or replayed callback finds no flow
    started = person.start(REPORTS).headers["Location"]
    state = parse_qs(urlsplit(started).query)["state"][0]
    forged = client.get(f"/sso/callback?code=forged&state={state}x")
    assert forged.status_code == 400 and person.verify(REPORTS) != 200
    # a step-up done for one context does not open a route of another rule
    back = person.callback(person.at_idp(started))
    assert back.headers["Location"] == REPORTS and person.verify(REPORTS) == 200
    assert client.get(f"/sso/callback?{urlsplit(started).query}").status_code == 400  # state used once


def test_generic_oidc_provider_gets_claims_and_max_age_and_must_send_auth_time(
        app: Flask, client: FlaskClient, fake_provider: FakeProvider) -> None:
    enable_sso(create_users=True)
    add_fake_provider(fake_provider)
    policies.save(DOCUMENT, actor="test")
    code, state = fake_provider.authorize(start_sign_in(client, "fake"))
    assert client.get(f"/sso/callback?code={code}&state={state}").status_code == 302
    assert verify_status(client, PAYROLL) != 200  # no auth_time
    auth_url = client.get("/auth/start?" + urlencode({"rd": PAYROLL})).headers["Location"]
    assert parse_qs(urlsplit(auth_url).query)["max_age"] == ["900"]
    code, state = fake_provider.authorize(auth_url)
    refused = client.get(f"/sso/callback?code={code}&state={state}")
    assert refused.status_code == 403 and "did not say when you signed in" in refused.get_data(as_text=True)
    fake_provider.make_id_token = lambda nonce: fake_provider.sign(
        fake_provider.claims(nonce, auth_time=int(time.time())))
    code, state = fake_provider.authorize(client.get("/auth/start?" + urlencode({"rd": PAYROLL})).headers["Location"])
    back = client.get(f"/sso/callback?code={code}&state={state}")
    assert back.status_code == 302 and back.headers["Location"] == PAYROLL
    assert verify_status(client, PAYROLL) == 200
    claims_url = client.get("/auth/start?" + urlencode({"rd": REPORTS})).headers["Location"]
    assert json.loads(parse_qs(urlsplit(claims_url).query)["claims"][0])["id_token"]["acrs"]["values"] == ["c1"]


def test_no_second_step_up_in_a_row_for_the_same_url(app: Flask, client: FlaskClient,
                                                     fake_provider: FakeProvider) -> None:
    """A provider whose answer passes the callback (within its clock leeway) but still not the rule: the next
    /auth/start for that URL explains on the denied page instead of starting another sign-in (no loop)."""
    enable_sso(create_users=True)
    add_fake_provider(fake_provider)
    policies.save(DOCUMENT, actor="test")
    fake_provider.make_id_token = lambda nonce: fake_provider.sign(
        fake_provider.claims(nonce, auth_time=int(time.time()) - 930))  # 15.5 min: inside the 60 s leeway
    code, state = fake_provider.authorize(start_sign_in(client, "fake"))
    client.get(f"/sso/callback?code={code}&state={state}")
    code, state = fake_provider.authorize(client.get("/auth/start?" + urlencode({"rd": PAYROLL})).headers["Location"])
    assert client.get(f"/sso/callback?code={code}&state={state}").headers["Location"] == PAYROLL
    again = client.get("/auth/start?" + urlencode({"rd": PAYROLL}))
    assert again.status_code == 302 and again.headers["Location"].startswith("/auth/denied?rd=")
    assert fake_provider.hits.get("token") == 2  # the first sign-in and the one step-up
