"""docs/microsoft.md §1.6-§1.7 and §3: the token endpoint (grants, errors, rotation) and the tokens it issues."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from joserfc import jwt
from joserfc.jwk import KeySet

from emulator.tokens import GRAPH_RESOURCE, verify_access_token
from tests.emulator.support import (
    ADMIN,
    GRAPH,
    OVERAGE,
    PLAIN,
    REDIRECT,
    Browser,
    Control,
    jwt_claims,
    jwt_header,
    pkce_pair,
)

SCOPE = f"{GRAPH}User.Read openid profile email offline_access"


def assert_error(resp, status: int, error: str, code: int, suberror: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["Cache-Control"] == "no-store, no-cache" and resp.headers["Pragma"] == "no-cache"
    body = resp.json()
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    lines = body["error_description"].split("\r\n")
    assert lines[1] == f"Trace ID: {body['trace_id']}" and lines[2] == f"Correlation ID: {body['correlation_id']}"
    assert lines[3] == f"Timestamp: {body['timestamp']}"
    assert body["error_uri"].endswith(f"/error?code={code}")
    if suberror:
        assert body["suberror"] == suberror
    else:
        assert "suberror" not in body
    return body


def consented(browser: Browser, user: str = PLAIN, **params: str) -> dict[str, str]:
    params.setdefault("scope", SCOPE)
    return browser.code(user, **params)


def test_code_redemption_success_shape_and_headers(browser: Browser) -> None:
    code = consented(browser)["code"]
    resp = browser.redeem(code, scope=SCOPE, client_info="1")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Cache-Control"] == "no-store, no-cache" and resp.headers["Pragma"] == "no-cache"
    body = resp.json()
    assert set(body) == {"token_type", "scope", "expires_in", "ext_expires_in", "access_token", "refresh_token",
                         "id_token", "client_info"}
    assert body["token_type"] == "Bearer"
    assert body["scope"] == f"{GRAPH}User.Read openid profile email offline_access"
    assert isinstance(body["expires_in"], int) and 3600 <= body["expires_in"] < 5400
    assert body["ext_expires_in"] == body["expires_in"]


def test_refresh_and_id_tokens_only_when_asked(browser: Browser) -> None:
    code = consented(browser, scope=f"{GRAPH}User.Read openid")["code"]
    body = browser.redeem(code).json()
    assert "refresh_token" not in body and "id_token" in body and "client_info" not in body
    code = consented(browser, scope=f"{GRAPH}User.Read offline_access")["code"]
    body = browser.redeem(code).json()
    assert "refresh_token" in body and "id_token" not in body
    assert body["scope"] == f"{GRAPH}User.Read offline_access"


def test_id_token_claims_and_signature(browser: Browser, emu) -> None:
    params = consented(browser, nonce="nonce-value-1")
    body = browser.redeem(params["code"]).json()
    keys = browser.http.get(f"{emu.base_url}/{emu.tenant_id}/discovery/v2.0/keys").json()
    header = jwt_header(body["id_token"])
    assert header["alg"] == "RS256" and header["typ"] == "JWT" and header["kid"] in {k["kid"] for k in keys["keys"]}
    claims = jwt.decode(body["id_token"], KeySet.import_key_set(keys)).claims
    now = time.time()
    assert claims["aud"] == browser.client_id
    assert claims["iss"] == f"{emu.base_url}/{emu.tenant_id}/v2.0"
    assert claims["ver"] == "2.0" and claims["tid"] == emu.tenant_id
    assert abs(claims["iat"] - now) < 30 and claims["nbf"] == claims["iat"] and claims["exp"] == claims["iat"] + 3600
    assert claims["preferred_username"] == PLAIN and claims["name"] == "Adele Vance"
    assert claims["email"] == PLAIN and claims["nonce"] == "nonce-value-1"
    assert claims["sid"] == params["session_state"]
    assert isinstance(claims["groups"], list) and len(claims["groups"]) >= 3
    assert "wids" not in claims and "uti" in claims and "login_hint" in claims
    oid = emu.app.extensions["emulator.store"].conn().execute(
        "SELECT id FROM users WHERE user_principal_name = ?", (PLAIN,)).fetchone()[0]
    assert claims["oid"] == oid and claims["sub"] != oid


def test_sub_is_pairwise_per_client(browser: Browser, emu, fresh_client: dict) -> None:
    first = jwt_claims(browser.redeem(consented(browser)["code"]).json()["id_token"])
    other = Browser(emu).use_client(fresh_client)
    code = other.code(PLAIN, scope="openid profile")["code"]
    second = jwt_claims(other.redeem(code).json()["id_token"])
    assert first["oid"] == second["oid"] and first["sub"] != second["sub"]


def test_admin_gets_wids_and_overage_user_gets_claim_sources(browser: Browser, emu) -> None:
    admin = jwt_claims(browser.redeem(consented(browser, ADMIN)["code"]).json()["id_token"])
    assert "62e90394-69f5-4237-9190-012177145e10" in admin["wids"]
    heavy = Browser(emu)
    claims = jwt_claims(heavy.redeem(heavy.code(OVERAGE, scope="openid profile")["code"]).json()["id_token"])
    assert "groups" not in claims
    assert claims["_claim_names"] == {"groups": "src1"}
    assert claims["_claim_sources"]["src1"]["endpoint"].endswith(f"/users/{claims['oid']}/getMemberObjects")


def test_wids_and_groups_need_group_membership_claims_on_the_application(emu, control: Control,
                                                                         fresh_client: dict) -> None:
    control("PATCH", f"/clients/{fresh_client['client_id']}", {"group_membership_claims": False})
    browser = Browser(emu).use_client(fresh_client)
    claims = jwt_claims(browser.redeem(consented(browser, ADMIN, scope="openid profile")["code"]).json()["id_token"])
    assert "wids" not in claims and "groups" not in claims and "_claim_names" not in claims
    body = browser.redeem(consented(browser, ADMIN, scope=f"{GRAPH}User.Read openid")["code"]).json()
    assert jwt_claims(body["access_token"])["wids"] == ["62e90394-69f5-4237-9190-012177145e10"]  # access tokens keep it


def test_email_claim_needs_email_scope_and_a_mailbox(browser: Browser, emu) -> None:
    claims = jwt_claims(browser.redeem(consented(browser, scope="openid profile")["code"]).json()["id_token"])
    assert "email" not in claims
    nomail = Browser(emu)
    claims = jwt_claims(nomail.redeem(nomail.code("joni.sherman@contoso.example",
                                                  scope="openid profile email")["code"]).json()["id_token"])
    assert "email" not in claims and claims["preferred_username"] == "joni.sherman@contoso.example"


def test_access_token_claims_and_verify(browser: Browser, emu) -> None:
    body = browser.redeem(consented(browser, ADMIN)["code"]).json()
    claims = jwt_claims(body["access_token"])
    assert claims["aud"] == GRAPH_RESOURCE and claims["appid"] == browser.client_id
    assert claims["scp"] == "User.Read openid profile email" and claims["tid"] == emu.tenant_id
    assert claims["upn"] == ADMIN and claims["wids"] == ["62e90394-69f5-4237-9190-012177145e10"]
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    with emu.app.app_context():
        verified = verify_access_token(body["access_token"])
        assert verified is not None and verified["oid"] == claims["oid"]
        assert verify_access_token(body["access_token"][:-3] + "abc") is None
        assert verify_access_token(body["id_token"]) is None  # wrong audience
        assert verify_access_token("") is None


def test_access_token_expiry_follows_the_clock(browser: Browser, emu, control: Control) -> None:
    token = browser.redeem(consented(browser)["code"]).json()["access_token"]
    control("POST", "/clock", {"shift": 6000})
    with emu.app.app_context():
        assert verify_access_token(token) is None


def test_pkce_s256_and_plain(browser: Browser) -> None:
    verifier, challenge = pkce_pair()
    code = consented(browser, code_challenge=challenge, code_challenge_method="S256")["code"]
    assert_error(browser.redeem(code, code_verifier="wrong" * 10), 400, "invalid_grant", 501481)
    code = consented(browser, code_challenge=challenge, code_challenge_method="S256")["code"]
    assert browser.redeem(code, code_verifier=verifier).status_code == 200
    code = consented(browser, code_challenge="plain-verifier-0123456789012345678901234567890123",
                     code_challenge_method="plain")["code"]
    assert browser.redeem(code, code_verifier="plain-verifier-0123456789012345678901234567890123").status_code == 200
    code = consented(browser, code_challenge=challenge, code_challenge_method="S256")["code"]
    assert_error(browser.redeem(code), 400, "invalid_request", 900144)


def test_code_is_single_use(browser: Browser) -> None:
    code = consented(browser)["code"]
    assert browser.redeem(code).status_code == 200
    assert_error(browser.redeem(code), 400, "invalid_grant", 54005)


def test_code_expires_after_ten_minutes(browser: Browser, control: Control) -> None:
    code = consented(browser)["code"]
    control("POST", "/clock", {"shift": 601})
    assert_error(browser.redeem(code), 400, "invalid_grant", 70008)


def test_redirect_uri_must_be_identical(browser: Browser) -> None:
    code = consented(browser)["code"]
    resp = browser.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT + "/x")
    assert_error(resp, 400, "invalid_grant", 500112)


def test_client_authentication_errors(browser: Browser) -> None:
    code = consented(browser)["code"]
    resp = browser.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT, client_secret="nope")
    body = assert_error(resp, 401, "invalid_client", 7000215)
    assert browser.client_id in body["error_description"]
    resp = browser.http.post(f"{browser.emu.base_url}/{browser.tenant}/oauth2/v2.0/token",
                             data={"client_id": browser.client_id, "grant_type": "authorization_code",
                                   "code": code, "redirect_uri": REDIRECT})
    assert_error(resp, 400, "invalid_request", 7000218)
    resp = browser.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                         client_id="00000000-0000-0000-0000-000000000001")
    assert_error(resp, 400, "unauthorized_client", 700016)
    # HTTP Basic works too.
    resp = browser.http.post(f"{browser.emu.base_url}/{browser.tenant}/oauth2/v2.0/token",
                             data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
                             auth=(browser.client_id, browser.client_secret))
    assert resp.status_code == 200


def test_request_shape_errors(browser: Browser, emu) -> None:
    assert_error(browser.token(), 400, "invalid_request", 900144)
    assert_error(browser.token(grant_type="password"), 400, "unsupported_grant_type", 70003)
    assert_error(browser.token(grant_type="authorization_code", code="garbage", redirect_uri=REDIRECT),
                 400, "invalid_grant", 9002313)
    resp = browser.http.post(f"{emu.base_url}/nowhere.example/oauth2/v2.0/token", data={"grant_type": "x",
                             "client_id": browser.client_id})
    assert_error(resp, 400, "invalid_tenant", 90002)


def test_code_used_at_another_tenant(browser: Browser, emu) -> None:
    code = consented(browser)["code"]
    resp = browser.http.post(f"{emu.base_url}/common/oauth2/v2.0/token",
                             data={"client_id": browser.client_id, "client_secret": browser.client_secret,
                                   "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert resp.status_code == 200  # /common accepts the code of any tenant


def test_refresh_rotates_and_old_token_stays_valid(browser: Browser) -> None:
    first = browser.redeem(consented(browser)["code"]).json()
    second = browser.token(grant_type="refresh_token", refresh_token=first["refresh_token"], scope=SCOPE).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"] and "id_token" in second
    assert second["scope"] == f"{GRAPH}User.Read openid profile email offline_access"
    third = browser.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert third.status_code == 200 and third.json()["refresh_token"] not in (first["refresh_token"],
                                                                               second["refresh_token"])


def test_refresh_errors(browser: Browser, control: Control, fresh_client: dict) -> None:
    rt = browser.redeem(consented(browser)["code"]).json()["refresh_token"]
    assert_error(browser.token(grant_type="refresh_token"), 400, "invalid_request", 900144)
    assert_error(browser.token(grant_type="refresh_token", refresh_token="1.AXkAnope"), 400, "invalid_grant",
                 9002313)
    resp = browser.token(grant_type="refresh_token", refresh_token=rt, scope=f"{GRAPH}Mail.Read offline_access")
    assert_error(resp, 400, "invalid_grant", 65001, "consent_required")
    resp = browser.token(grant_type="refresh_token", refresh_token=rt,
                         scope=f"{GRAPH}User.Read https://outlook.office.com/Mail.Read")
    assert_error(resp, 400, "invalid_scope", 700022)
    other = Browser(browser.emu).use_client(fresh_client)
    assert_error(other.token(grant_type="refresh_token", refresh_token=rt), 400, "invalid_grant", 70000)


def test_refresh_after_90_days_of_inactivity(browser: Browser, control: Control) -> None:
    rt = browser.redeem(consented(browser)["code"]).json()["refresh_token"]
    control("POST", "/clock", {"shift": 89 * 86400})
    fresh = browser.token(grant_type="refresh_token", refresh_token=rt).json()["refresh_token"]
    control("POST", "/clock", {"shift": 91 * 86400})
    body = assert_error(browser.token(grant_type="refresh_token", refresh_token=rt), 400, "invalid_grant", 700082)
    assert "inactive for 90.00:00:00" in body["error_description"]
    assert_error(browser.token(grant_type="refresh_token", refresh_token=fresh), 400, "invalid_grant", 700082)


def test_client_credentials(browser: Browser, emu) -> None:
    resp = browser.token(grant_type="client_credentials", scope=f"{GRAPH}.default")
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    claims = jwt_claims(body["access_token"])
    assert claims["idtyp"] == "app" and "oid" not in claims and "scp" not in claims
    assert "User.Read.All" in claims["roles"] and claims["tid"] == emu.tenant_id
    assert_error(browser.token(grant_type="client_credentials", scope=f"{GRAPH}User.Read.All"), 400,
                 "invalid_scope", 1002012)
    resp = browser.http.post(f"{emu.base_url}/common/oauth2/v2.0/token",
                             data={"client_id": browser.client_id, "client_secret": browser.client_secret,
                                   "grant_type": "client_credentials", "scope": f"{GRAPH}.default"})
    assert_error(resp, 400, "invalid_request", 50059)
    resp = browser.http.post(f"{emu.base_url}/organizations/oauth2/v2.0/token",
                             data={"client_id": browser.client_id, "client_secret": browser.client_secret,
                                   "grant_type": "client_credentials", "scope": f"{GRAPH}.default"})
    assert resp.status_code == 200


def test_app_token_reads_graph(browser: Browser, emu) -> None:
    token = browser.token(grant_type="client_credentials", scope=f"{GRAPH}.default").json()["access_token"]
    resp = browser.http.get(f"{emu.base_url}/v1.0/users?$top=5", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and len(resp.json()["value"]) == 5


def test_userinfo(browser: Browser, emu) -> None:
    token = browser.redeem(consented(browser)["code"]).json()["access_token"]
    resp = browser.http.get(f"{emu.base_url}/oidc/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.json()["email"] == PLAIN and resp.json()["name"] == "Adele Vance"
    assert browser.http.get(f"{emu.base_url}/oidc/userinfo").status_code == 401


def test_default_scope_at_the_token_endpoint_means_what_was_granted(browser: Browser, fresh_client: dict) -> None:
    browser.use_client(fresh_client)
    code = browser.code(PLAIN, scope=f"openid offline_access {GRAPH}User.Read")["code"]
    rt = browser.redeem(code).json()["refresh_token"]
    body = browser.token(grant_type="refresh_token", refresh_token=rt,
                         scope=f"{GRAPH}.default offline_access openid").json()
    assert body["scope"].split() == [f"{GRAPH}User.Read", "openid", "offline_access"]
    assert jwt_claims(body["access_token"])["scp"] == "User.Read openid"


def test_concurrent_refreshes_do_not_lock_the_store(browser: Browser, emu) -> None:
    tokens = [browser.redeem(consented(browser)["code"]).json()["refresh_token"] for _ in range(6)]

    def spin(rt: str) -> list[int]:
        agent = Browser(emu)
        statuses = []
        for _ in range(8):
            resp = agent.token(grant_type="refresh_token", refresh_token=rt)
            statuses.append(resp.status_code)
            rt = resp.json().get("refresh_token", rt)
        return statuses

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(spin, tokens))
    assert all(status == 200 for statuses in results for status in statuses)
