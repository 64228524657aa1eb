"""docs/microsoft.md §1.4-§1.5: the authorize endpoint, sign-in and consent pages, redirects (over HTTPS)."""

from __future__ import annotations

import base64
import html as html_lib
import json
import re
from urllib.parse import parse_qsl, urlsplit

from emulator.server import create_app
from tests.emulator.support import (
    ADMIN,
    GRAPH,
    PLAIN,
    REDIRECT,
    REDIRECT_PORTLESS,
    Browser,
    jwt_claims,
    redirect_params,
)


def test_unknown_client_is_shown_on_the_page_not_redirected(browser: Browser) -> None:
    resp = browser.authorize(client_id="00000000-1111-2222-3333-444444444444")
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert "AADSTS700016" in resp.text


def test_redirect_uri_mismatch_is_shown_on_the_page(browser: Browser) -> None:
    resp = browser.authorize(redirect_uri="https://evil.example/callback")
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert "AADSTS50011" in resp.text and "https://evil.example/callback" in resp.text


def test_localhost_registrations_ignore_the_port_only(browser: Browser) -> None:
    assert browser.authorize(redirect_uri="http://localhost:9999/auth/callback").status_code == 200
    assert browser.authorize(redirect_uri="http://127.0.0.1:5001/sso/callback").status_code == 200
    assert browser.authorize(redirect_uri="http://localhost:8765/other").status_code == 400
    assert browser.authorize(redirect_uri="https://localhost:8765/auth/callback").status_code == 400


def test_signin_page_is_plain_accessible_html(browser: Browser) -> None:
    page = browser.authorize(login_hint=PLAIN)
    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    assert '<label for="username">' in page.text and '<label for="password">' in page.text
    assert f'value="{PLAIN}"' in page.text  # login_hint pre-fills the user name
    assert "http" not in re.sub(r'(value|action|href|src)="[^"]*"', "", page.text).replace("http-equiv", "")


def test_code_redirect_echoes_state_and_carries_session_state_and_client_info(browser: Browser) -> None:
    state = "a b&c=d/é"
    params = browser.code(PLAIN, state=state, client_info="1")
    assert params["state"] == state
    assert params["code"].startswith("1.AQ")
    assert re.fullmatch(r"[0-9a-f-]{36}", params["session_state"])
    info = json.loads(base64.urlsafe_b64decode(params["client_info"] + "=="))
    assert set(info) == {"uid", "utid"} and info["utid"] == browser.tenant


def test_client_info_only_when_asked(browser: Browser) -> None:
    params = browser.code(PLAIN)
    assert "client_info" not in params and "code" in params


def test_wrong_password_and_unknown_or_disabled_users_stay_on_the_page(browser: Browser) -> None:
    page = browser.authorize()
    assert "AADSTS50126" in browser.signin(page, PLAIN, "wrong").text
    assert "AADSTS50034" in browser.signin(page, "nobody@contoso.example").text
    assert "AADSTS50057" in browser.signin(page, "enrico.cattaneo@contoso.example").text


def test_pick_an_account_without_password(browser: Browser, emu) -> None:
    page = browser.authorize()
    user_id = re.search(r'name="user_id" value="([^"]+)">\s*Adele Vance', page.text).group(1)
    resp = browser.http.post(f"{emu.base_url}/{browser.tenant}/login",
                             data={**browser.form_fields(page), "action": "pick", "user_id": user_id},
                             allow_redirects=False)
    assert "code" in redirect_params(resp)


def test_cancel_redirects_access_denied_with_subcode(browser: Browser, emu) -> None:
    page = browser.authorize()
    resp = browser.http.post(f"{emu.base_url}/{browser.tenant}/login",
                             data={**browser.form_fields(page), "action": "cancel"}, allow_redirects=False)
    params = redirect_params(resp)
    assert params["error"] == "access_denied" and params["error_subcode"] == "cancel"
    assert params["state"] == "st-1"
    assert params["error_description"].startswith("AADSTS65004: ")
    assert "\r\nTrace ID: " in params["error_description"]


def test_sso_session_skips_the_password_unless_prompt_login(browser: Browser) -> None:
    page = browser.authorize()
    signed_in = browser.signin(page, PLAIN)
    cookie = signed_in.headers["Set-Cookie"]
    assert cookie.startswith("emu_session=") and "Path=/" in cookie and "Secure" in cookie
    assert "HttpOnly" in cookie and "SameSite=None" in cookie
    again = browser.authorize()
    assert "code" in redirect_params(again)
    assert browser.authorize(prompt="login").status_code == 200
    assert browser.authorize(prompt="select_account").status_code == 200
    assert browser.authorize(login_hint=ADMIN).status_code == 200  # another user: sign in again


def test_prompt_none_errors(browser: Browser, fresh_client: dict) -> None:
    params = redirect_params(browser.authorize(prompt="none"))
    assert params["error"] == "login_required" and params["error_description"].startswith("AADSTS50058:")
    browser.code(PLAIN)
    params = redirect_params(browser.authorize(prompt="none", login_hint=ADMIN))
    assert params["error"] == "interaction_required"
    browser.use_client(fresh_client)
    params = redirect_params(browser.authorize(prompt="none", scope=f"openid {GRAPH}User.Read"))
    assert params["error"] == "consent_required" and params["state"] == "st-1"
    assert params["error_description"].startswith("AADSTS65001:")


def test_consent_is_asked_once_then_remembered(browser: Browser, fresh_client: dict) -> None:
    browser.use_client(fresh_client)
    scope = f"openid offline_access {GRAPH}User.Read"
    page = browser.signin(browser.authorize(scope=scope), PLAIN)
    assert page.status_code == 200 and "Permissions requested" in page.text and "User.Read" in page.text
    assert "code" in redirect_params(browser.consent(page))
    assert "code" in redirect_params(browser.authorize(scope=scope))  # no consent page the second time
    page = browser.authorize(scope=scope, prompt="consent")
    assert "Permissions requested" in page.text
    assert "code" in redirect_params(browser.consent(page))


def test_declining_consent(browser: Browser, fresh_client: dict) -> None:
    browser.use_client(fresh_client)
    page = browser.signin(browser.authorize(scope=f"openid {GRAPH}User.Read"), PLAIN)
    params = redirect_params(browser.consent(page, accept=False))
    assert params["error"] == "access_denied" and params["error_description"].startswith("AADSTS65004:")


def test_admin_only_scopes_need_an_admin(browser: Browser, fresh_client: dict) -> None:
    browser.use_client(fresh_client)
    scope = f"openid {GRAPH}User.Read.All"
    page = browser.signin(browser.authorize(scope=scope), PLAIN)
    assert page.status_code == 200 and "Need admin approval" in page.text and "AADSTS90094" in page.text
    back = re.search(r'<a href="([^"]+)">Return to the application', page.text).group(1).replace("&amp;", "&")
    assert back.startswith(REDIRECT + "?") and "error=access_denied" in back and "error_subcode=cancel" in back
    admin = Browser(browser.emu).use_client(fresh_client)
    page = admin.signin(admin.authorize(scope=scope), ADMIN)
    assert "Permissions requested" in page.text and "Consent on behalf of your organization" in page.text
    assert "code" in redirect_params(admin.consent(page, org=True))
    # Admin consent for the organization covers the plain user now.
    fresh = Browser(browser.emu).use_client(fresh_client)
    assert "code" in redirect_params(fresh.signin(fresh.authorize(scope=scope), PLAIN))


def test_form_post_is_an_autosubmitting_form(browser: Browser, emu) -> None:
    page = browser.signin(browser.authorize(response_mode="form_post", redirect_uri=REDIRECT_PORTLESS), PLAIN)
    assert page.status_code == 200
    assert f'action="{REDIRECT_PORTLESS}"' in page.text and 'method="post"' in page.text
    assert re.search(r'name="code" value="1\.AQ', page.text)
    assert 'name="state" value="st-1"' in page.text and "<noscript>" in page.text
    script = re.search(r'<script src="([^"]+)"', page.text).group(1)
    assert "<script>" not in page.text  # no inline script: CSP-friendly
    js = browser.http.get(emu.base_url + script)
    assert js.status_code == 200 and "submit()" in js.text


def test_request_errors_are_redirected(browser: Browser) -> None:
    params = redirect_params(browser.authorize(response_type="token"))
    assert params["error"] == "unsupported_response_type"
    params = redirect_params(browser.authorize(scope=""))
    assert params["error"] == "invalid_request"
    params = redirect_params(browser.authorize(code_challenge="x", code_challenge_method="S512"))
    assert params["error"] == "invalid_request"
    params = redirect_params(browser.authorize(scope="openid https://outlook.office.com/Mail.Read"))
    assert params["error"] == "invalid_resource"


def test_unknown_parameters_are_ignored_and_nonce_is_kept_verbatim(browser: Browser) -> None:
    nonce = "0f" * 32
    params = browser.code(PLAIN, nonce=nonce, **{"X-AnchorMailbox": f"UPN:{PLAIN}", "foo": "bar"})
    body = browser.redeem(params["code"]).json()
    assert jwt_claims(body["id_token"])["nonce"] == nonce


def test_common_authority_accepts_users_of_any_tenant(browser: Browser) -> None:
    page = browser.authorize(tenant="common")
    assert page.status_code == 200
    resp = browser.signin(page, PLAIN, tenant="common")
    assert "code" in redirect_params(resp)


def test_max_age_forces_a_fresh_sign_in(browser: Browser, control) -> None:
    browser.code(PLAIN)
    assert "code" in redirect_params(browser.authorize(max_age="3600"))
    control("POST", "/clock", {"shift": 7200})
    assert browser.authorize(max_age="3600").status_code == 200  # sign-in page again
    assert redirect_params(browser.authorize(max_age="3600", prompt="none"))["error"] == "login_required"


def test_second_tenant_signs_in_its_own_users_only(tmp_path) -> None:
    app = create_app(tmp_path, tenants=2, redirect_uris=[REDIRECT])
    conn = app.extensions["emulator.store"].conn()
    fabrikam = conn.execute("SELECT id FROM tenants WHERE domain = 'fabrikam.example'").fetchone()[0]
    client_id, secret = conn.execute("SELECT client_id, secret FROM clients").fetchone()
    web = app.test_client()
    https = {"base_url": "https://localhost"}
    page = web.get("/fabrikam.example/oauth2/v2.0/authorize", query_string={
        "client_id": client_id, "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid profile",
        "state": "s"}, **https)
    assert page.status_code == 200
    ctx = html_lib.unescape(re.search(r'name="ctx" value="([^"]*)"', page.text).group(1))
    form = {"ctx": ctx, "kind": "authorize", "action": "password", "password": "demo"}
    wrong = web.post("/fabrikam.example/login", data={**form, "username": ADMIN}, **https)
    assert wrong.status_code == 200 and "AADSTS50034" in wrong.text
    done = web.post("/fabrikam.example/login", data={**form, "username": "admin@fabrikam.example"}, **https)
    assert done.status_code == 302 and done.headers["Set-Cookie"].startswith("emu_session=")
    code = dict(parse_qsl(urlsplit(done.headers["Location"]).query))["code"]
    token = web.post(f"/{fabrikam}/oauth2/v2.0/token", data={
        "client_id": client_id, "client_secret": secret, "grant_type": "authorization_code", "code": code,
        "redirect_uri": REDIRECT}, **https).get_json()
    claims = jwt_claims(token["id_token"])
    assert claims["tid"] == fabrikam and claims["iss"] == f"https://localhost/{fabrikam}/v2.0"
    assert claims["preferred_username"] == "admin@fabrikam.example"
    contoso = conn.execute("SELECT id FROM tenants WHERE domain = 'contoso.example'").fetchone()[0]
    again = web.get(f"/{contoso}/oauth2/v2.0/authorize", query_string={
        "client_id": client_id, "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
        "prompt": "none"}, **https)
    assert again.status_code == 302 and "error=interaction_required" in again.headers["Location"]
    sso = web.get(f"/{fabrikam}/oauth2/v2.0/authorize", query_string={
        "client_id": client_id, "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
        "prompt": "none"}, **https)
    code = dict(parse_qsl(urlsplit(sso.headers["Location"]).query))["code"]
    elsewhere = web.post(f"/{contoso}/oauth2/v2.0/token", data={
        "client_id": client_id, "client_secret": secret, "grant_type": "authorization_code", "code": code,
        "redirect_uri": REDIRECT}, **https)
    assert elsewhere.status_code == 400 and elsewhere.get_json()["error_codes"] == [700005]
