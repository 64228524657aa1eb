"""docs/microsoft.md §2: the admin consent endpoint, consent for the whole organisation (identity/adminconsent.py)."""

from __future__ import annotations

from tests.emulator.support import ADMIN, GRAPH, PLAIN, REDIRECT, Browser, redirect_params


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
