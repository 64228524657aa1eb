"""Office 365 sign-in end to end against the tenant emulator, through the Flask test client: query and form_post,
identity by (tid, oid), groups overage through Graph, one outbound request per warm sign-in, auto-redirect and
the bypass, sign-out at the provider and front-channel logout."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask.testing import FlaskClient

from core.extensions import db
from core.models import User
from emulator.server import EmulatorHandle
from sso.models import SignInAttempt
from sso.sessions import store
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, csrf_token, make_user, sign_in
from tests.o365_helpers import (
    authorize_datasource,
    browser_session,
    create_datasource,
    datasource_named,
    emulator_env,
    sign_in_at_microsoft,
)
from tests.sso_helpers import (
    add_office365_provider,
    enable_sso,
    microsoft_sign_in,
    ready_datasource,
    start_sign_in,
)

ADELE = "adele.vance@contoso.example"
ISAIAH = "isaiah.langer@contoso.example"  # member of > 200 groups: overage


@pytest.fixture
def app_env(sso_emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(sso_emulator)


@pytest.fixture
def contoso(app, sso_emulator: EmulatorHandle):  # type: ignore[no-untyped-def]
    enable_sso(create_users=True)
    return add_office365_provider(ready_datasource(sso_emulator))


def _control(emulator: EmulatorHandle, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(method, f"{emulator.base_url}/_emulator/{path}", json=body, verify=emulator.ca_path,
                                headers={"Authorization": f"Bearer {emulator.config['control_key']}"}, timeout=10)
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


def test_sign_in_lands_on_home_with_tenant_and_a_small_opaque_cookie(client: FlaskClient, contoso,  # type: ignore[no-untyped-def]
                                                                     sso_emulator: EmulatorHandle) -> None:
    response = microsoft_sign_in(client, sso_emulator, "contoso", ADELE, "?next=/sessions")
    assert response.status_code == 302 and response.headers["Location"] == "/sessions"
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("gw_session="))
    assert cookie.startswith("gw_session=") and len(cookie) < 1024 and "HttpOnly" in cookie
    assert len(cookie.split(";")[0].split("=", 1)[1]) == 43  # an opaque id, whatever the tokens' size
    home = client.get("/").get_data(as_text=True)
    assert "Adele Vance" in home and sso_emulator.tenant_id in home
    user = db.session.scalars(db.select(User)).one()
    assert user.tenant_id == sso_emulator.tenant_id and user.object_id and user.email == ADELE


def test_form_post_callback_works_without_the_session_cookie(app, client: FlaskClient,
                                                             sso_emulator: EmulatorHandle) -> None:  # type: ignore[no-untyped-def]
    enable_sso(create_users=True)
    add_office365_provider(ready_datasource(sso_emulator), response_mode="form_post")
    auth_url = start_sign_in(client, "contoso")
    assert parse_qs(urlsplit(auth_url).query)["response_mode"] == ["form_post"]
    client.delete_cookie("gw_session")  # what SameSite=Lax does to a cross-site POST
    response = microsoft_sign_in(client, sso_emulator, "contoso", ADELE)
    assert response.status_code == 302 and client.get("/").status_code == 200


def test_hints_and_pkce_are_sent(client: FlaskClient, contoso) -> None:  # type: ignore[no-untyped-def]
    query = parse_qs(urlsplit(start_sign_in(client, "contoso", "?login_hint=adele.vance@contoso.example"
                                                               "&domain_hint=contoso.example")).query)
    assert query["login_hint"] == [ADELE] and query["domain_hint"] == ["contoso.example"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["nonce"] and query["state"] and query["redirect_uri"] == ["http://localhost/sso/callback"]
    assert "response_mode" not in query  # query is the default


def test_a_warm_sign_in_makes_one_outbound_request(app, client: FlaskClient, contoso,  # type: ignore[no-untyped-def]
                                                   sso_emulator: EmulatorHandle) -> None:
    assert microsoft_sign_in(client, sso_emulator, "contoso", ADELE).status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    _control(sso_emulator, "DELETE", "counters")
    second = app.test_client()
    assert microsoft_sign_in(second, sso_emulator, "contoso", "megan.bowen@contoso.example").status_code == 302
    counters = _control(sso_emulator, "GET", "counters")["counters"]
    from_gateway = {k: v for k, v in counters.items() if "authorize" not in k and "/login" not in k
                    and "consent" not in k}
    assert from_gateway == {"POST /<tenant>/oauth2/v2.0/token": 1}, counters


def test_groups_overage_is_read_from_graph_and_cached(app, client: FlaskClient, sso_emulator: EmulatorHandle) -> None:  # type: ignore[no-untyped-def]
    admin = app.test_client()
    make_user(ADMIN_EMAIL, ADMIN_PASSWORD, "Administrator")
    sign_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
    create_datasource(admin, sso=True)
    authorize_datasource(admin, sso_emulator, datasource_named())
    enable_sso(create_users=True)
    add_office365_provider(datasource_named())
    from emulator.graph.relations import role_object_id

    user_admin = "fe930be7-5e62-47db-91af-98c3a49a38b1"  # Graph lists directory roles among memberships
    with sso_emulator.app.extensions["emulator.store"].transaction() as conn:
        conn.execute("UPDATE users SET directory_roles = ? WHERE user_principal_name = ?", (f'["{user_admin}"]',
                                                                                         ISAIAH))
    assert microsoft_sign_in(client, sso_emulator, "contoso", ISAIAH).status_code == 302
    home = client.get("/").get_data(as_text=True)
    assert "overage (Graph transitiveMemberOf)" in home
    attempt = db.session.scalars(db.select(SignInAttempt).filter_by(outcome="success")).one()
    assert attempt.groups_source == "overage (Graph transitiveMemberOf)"
    record = store().for_user(db.session.scalars(db.select(User).filter_by(email=ISAIAH)).one().id)[0]
    assert len(record.data["identity"]["groups"]) > 200
    assert role_object_id(sso_emulator.tenant_id, user_admin) not in record.data["identity"]["groups"]
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    from sso.models import GroupCache

    db.session.execute(db.delete(GroupCache))  # as if the TTL had passed
    db.session.commit()
    _control(sso_emulator, "DELETE", "counters")
    assert microsoft_sign_in(client, sso_emulator, "contoso", ISAIAH).status_code == 302
    assert _from_gateway(_control(sso_emulator, "GET", "counters")["counters"]) == {
        "POST /<tenant>/oauth2/v2.0/token": 1, "GET /v1.0/users/<ref>/transitiveMemberOf": 1}
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    _control(sso_emulator, "DELETE", "counters")
    assert microsoft_sign_in(client, sso_emulator, "contoso", ISAIAH).status_code == 302
    assert "overage (cached)" in client.get("/").get_data(as_text=True)
    assert _from_gateway(_control(sso_emulator, "GET", "counters")["counters"]) == {
        "POST /<tenant>/oauth2/v2.0/token": 1}


def _from_gateway(counters: dict[str, int]) -> dict[str, int]:
    """The emulator's counters minus what the browser did (sign-in pages)."""
    return {k: v for k, v in counters.items() if not any(p in k for p in ("authorize", "/login", "consent"))}


def test_auto_redirect_hides_the_password_form_and_the_bypass_role_still_gets_in(
        client: FlaskClient, contoso) -> None:  # type: ignore[no-untyped-def]
    make_user(ADMIN_EMAIL, ADMIN_PASSWORD, "Administrator")
    make_user("plain@example.com", "plain-password-1", "User")
    enable_sso(auto_redirect=True)
    response = client.get("/login?next=/sessions")
    assert response.status_code == 302 and response.headers["Location"] == "/sso/login/contoso?next=/sessions"
    page = client.get("/login?local=1").get_data(as_text=True)
    assert 'name="password"' in page and "Sign in with Office 365" in page
    token = csrf_token(client, "/login?local=1")
    refused = client.post("/login?local=1", data={"email": "plain@example.com", "password": "plain-password-1",
                                                  "csrf_token": token})
    assert refused.status_code == 200 and "reserved for administrators" in refused.get_data(as_text=True)
    token = csrf_token(client, "/login?local=1")
    ok = client.post("/login?local=1", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token})
    assert ok.status_code == 302 and client.get("/").status_code == 200


def test_sign_out_ends_the_session_here_and_at_microsoft(client: FlaskClient, contoso,  # type: ignore[no-untyped-def]
                                                          sso_emulator: EmulatorHandle) -> None:
    browser = browser_session(sso_emulator)
    auth_url = start_sign_in(client, "contoso")
    callback = sign_in_at_microsoft(sso_emulator, auth_url, ADELE, session=browser, org_consent=False)
    location = urlsplit(callback.headers["Location"])
    assert client.get(f"{location.path}?{location.query}").status_code == 302
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    end_session = urlsplit(response.headers["Location"])
    params = parse_qs(end_session.query)
    assert end_session.path.endswith("/oauth2/v2.0/logout")
    assert params["post_logout_redirect_uri"] == ["http://localhost/sso/signed-out"] and params["logout_hint"]
    assert client.get("/").status_code == 302
    back = browser.get(response.headers["Location"], allow_redirects=False)
    assert back.status_code == 302 and back.headers["Location"].startswith("http://localhost/sso/signed-out")
    again = browser.get(start_sign_in(client, "contoso"), allow_redirects=False)
    assert again.status_code == 200 and "/login" in again.text  # Microsoft asks for credentials again


def test_front_channel_logout_ends_the_matching_sessions(app, client: FlaskClient, contoso,  # type: ignore[no-untyped-def]
                                                         sso_emulator: EmulatorHandle) -> None:
    assert microsoft_sign_in(client, sso_emulator, "contoso", ADELE).status_code == 302
    user = db.session.scalars(db.select(User)).one()
    sid = store().for_user(user.id)[0].idp_sid
    assert sid
    other = app.test_client()
    wrong = other.get(f"/sso/front-channel-logout?sid={sid}&iss=https://evil.example/x/v2.0")
    assert wrong.status_code == 200 and client.get("/").status_code == 200  # the issuer must match
    issuer = f"{sso_emulator.config['authority_host']}/{sso_emulator.tenant_id}/v2.0"
    response = other.get(f"/sso/front-channel-logout?sid={sid}&iss={issuer}")
    assert response.status_code == 200 and "frame-ancestors" in response.headers["Content-Security-Policy"]
    assert client.get("/").status_code == 302 and store().for_user(user.id) == []


def test_a_user_disabled_at_microsoft_is_refused(client: FlaskClient, contoso,  # type: ignore[no-untyped-def]
                                                 sso_emulator: EmulatorHandle) -> None:
    from tests.o365_helpers import sign_in_at_microsoft as at_microsoft

    response = at_microsoft(sso_emulator, start_sign_in(client, "contoso"), "enrico.cattaneo@contoso.example")
    assert response.status_code != 302 or "/sso/callback" not in response.headers.get("Location", "") or \
        "error=" in response.headers["Location"]
    assert client.get("/").status_code == 302


def test_front_channel_logout_needs_sid_and_iss_from_entra(app, client: FlaskClient, contoso,  # type: ignore[no-untyped-def]
                                                          sso_emulator: EmulatorHandle) -> None:
    assert microsoft_sign_in(client, sso_emulator, "contoso", ADELE).status_code == 302
    sid = store().for_user(db.session.scalars(db.select(User)).one().id)[0].idp_sid
    assert client.get("/sso/front-channel-logout").status_code == 200  # a link on any site: ignored
    assert client.get("/").status_code == 200
    assert client.get(f"/sso/front-channel-logout?sid={sid}").status_code == 200  # Entra always sends iss
    assert client.get("/").status_code == 200
    _control(sso_emulator, "DELETE", "counters")
    issuer = f"{sso_emulator.config['authority_host']}/{sso_emulator.tenant_id}/v2.0"
    assert client.get(f"/sso/front-channel-logout?sid={sid}&iss={issuer}").status_code == 200
    assert client.get("/").status_code == 302
    assert _control(sso_emulator, "GET", "counters")["counters"] == {}  # no provider asked anything


def test_an_id_token_with_an_extra_audience_is_refused(app, client: FlaskClient, contoso,  # type: ignore[no-untyped-def]
                                                       sso_emulator: EmulatorHandle) -> None:
    from sso.models import SignInAttempt as Attempt

    client_id = str(app.config["O365_CLIENT_ID"])
    for claims in ({"aud": [client_id, "00000003-0000-0000-c000-000000000000"]},  # another audience, no azp
                   {"aud": [client_id, "00000003-0000-0000-c000-000000000000"], "azp": client_id},
                   {"azp": "another-app"}):
        _control(sso_emulator, "POST", "id-token-claims", {"claims": claims})
        response = microsoft_sign_in(client, sso_emulator, "contoso", ADELE)
        assert response.status_code == 400, claims
        assert client.get("/").status_code == 302
        attempt = db.session.scalars(db.select(Attempt).order_by(Attempt.id.desc())).first()
        assert attempt.reason.startswith("audience:"), attempt.reason
    _control(sso_emulator, "DELETE", "id-token-claims")
    assert microsoft_sign_in(client, sso_emulator, "contoso", ADELE).status_code == 302

