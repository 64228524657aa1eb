"""docs/microsoft.md §4: real client libraries (MSAL ConfidentialClientApplication, Authlib) complete the code flow
against the emulator over HTTPS."""

from __future__ import annotations

import msal
import pytest
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.emulator.support import (
    ADMIN,
    GRAPH,
    PLAIN,
    REDIRECT,
    REDIRECT_HTTPS,
    Browser,
    https_session,
    redirect_params,
)


def msal_app(emu) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        emu.config["client_id"], client_credential=emu.config["client_secret"],
        authority=f"{emu.base_url}/{emu.tenant_id}", instance_discovery=False,
        http_client=https_session(emu.ca_path), token_cache=msal.SerializableTokenCache())


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_msal_auth_code_flow_silent_refresh_and_client_credentials(emu) -> None:
    app = msal_app(emu)
    scopes = [f"{GRAPH}User.Read.All", f"{GRAPH}Group.ReadWrite.All"]
    flow = app.initiate_auth_code_flow(scopes, redirect_uri=REDIRECT, login_hint=ADMIN, response_mode="form_post")
    browser = Browser(emu)
    page = browser.http.get(flow["auth_uri"], allow_redirects=False)
    assert page.status_code == 200 and f'value="{ADMIN}"' in page.text
    page = browser.signin(page, ADMIN)
    if "Permissions requested" in page.text:
        page = browser.consent(page)
    fields = dict(__import__("re").findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    assert f'action="{REDIRECT}"' in page.text and fields["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, fields)
    assert "error" not in result, result
    assert result["token_type"] == "Bearer" and result["refresh_token"]
    claims = result["id_token_claims"]
    assert claims["preferred_username"] == ADMIN and claims["tid"] == emu.tenant_id
    account = app.get_accounts()[0]
    assert account["home_account_id"] == f"{claims['oid']}.{emu.tenant_id}"
    assert account["realm"] == emu.tenant_id and account["username"] == ADMIN
    silent = app.acquire_token_silent_with_error(scopes, account, force_refresh=True)
    assert silent and "access_token" in silent and silent["access_token"] != result["access_token"]
    graph = https_session(emu.ca_path).get(f"{emu.base_url}/v1.0/me",
                                           headers={"Authorization": f"Bearer {silent['access_token']}"})
    assert graph.status_code == 200 and graph.json()["userPrincipalName"] == ADMIN
    app_only = msal_app(emu).acquire_token_for_client([f"{GRAPH}.default"])
    assert app_only["token_type"] == "Bearer" and "refresh_token" not in app_only


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_msal_sees_revocation_as_invalid_grant(emu, control) -> None:
    app = msal_app(emu)
    flow = app.initiate_auth_code_flow([f"{GRAPH}User.Read"], redirect_uri=REDIRECT)
    browser = Browser(emu)
    page = browser.signin(browser.http.get(flow["auth_uri"], allow_redirects=False), PLAIN)
    if "Permissions requested" in page.text:
        page = browser.consent(page)
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, redirect_params(page))
    control("POST", "/revoke", {"user": PLAIN})
    account = app.get_accounts()[0]
    result = app.acquire_token_silent_with_error([f"{GRAPH}User.Read"], account, force_refresh=True)
    assert result["error"] == "invalid_grant" and 50173 in result["error_codes"]


def test_authlib_oauth2_session_code_flow_with_pkce(emu) -> None:
    session = OAuth2Session(emu.config["client_id"], emu.config["client_secret"],
                            scope="openid profile email offline_access", redirect_uri=REDIRECT_HTTPS,
                            code_challenge_method="S256")
    session.trust_env = False
    session.verify = emu.ca_path
    discovery = session.get(f"{emu.base_url}/{emu.tenant_id}/v2.0/.well-known/openid-configuration",
                            withhold_token=True).json()
    verifier = "v" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz"
    uri, state = session.create_authorization_url(discovery["authorization_endpoint"], code_verifier=verifier,
                                                  nonce="authlib-nonce")
    browser = Browser(emu)
    page = browser.signin(browser.http.get(uri, allow_redirects=False), PLAIN)
    assert page.status_code == 302
    callback = page.headers["Location"]
    assert callback.startswith(REDIRECT_HTTPS + "?")
    token = session.fetch_token(discovery["token_endpoint"], authorization_response=callback,
                                code_verifier=verifier)
    assert token["token_type"] == "Bearer" and token["refresh_token"]
    keys = KeySet.import_key_set(session.get(discovery["jwks_uri"], withhold_token=True).json())
    claims = jwt.decode(token["id_token"], keys).claims
    assert claims["iss"] == discovery["issuer"] and claims["nonce"] == "authlib-nonce"
    assert claims["aud"] == emu.config["client_id"]
    refreshed = session.refresh_token(discovery["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
