"""ID token validation (issue 5, point 3), each rule on its own with tokens this test signs, through the real
callback: a failure shows an error page with a reference, is audited, and creates no session."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests
from flask.testing import FlaskClient

from core.extensions import db
from core.models import AuditEvent, PendingFlowEntry, User
from oidc.id_tokens import IdTokenError, ProviderMetadata, validate_id_token
from sso.models import SignInAttempt, SsoProvider, UserSession
from sso.oidc import ProviderClient
from tests.sso_helpers import (
    CLIENT_ID,
    KEY_A,
    KEY_B,
    FakeProvider,
    enable_sso,
    fake_sign_in,
    start_sign_in,
)


@pytest.fixture
def app_env() -> dict[str, str]:
    """The fake providers listen on 127.0.0.1 over http: a development setting, made explicit."""
    return {"SSO_ALLOW_PRIVATE_PROVIDERS": "1"}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _assert_refused(client: FlaskClient, fake: FakeProvider, check: str) -> None:
    response = fake_sign_in(client, fake)
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page[:300]
    assert "Sign-in failed" in page and "Reference:" in page
    assert client.get("/").status_code == 302  # no session
    assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 0  # nothing stored half-way
    attempt = db.session.scalars(db.select(SignInAttempt)).one()
    assert attempt.outcome == "failure" and attempt.reason.startswith(f"{check}:"), attempt.reason
    assert attempt.reference in page
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="sign_in.sso")).one()
    assert event.outcome == "failure" and event.detail["reference"] == attempt.reference
    assert db.session.scalar(db.select(db.func.count()).select_from(UserSession).where(
        UserSession.user_id.is_not(None))) == 0


def test_a_valid_token_signs_in_creates_the_user_and_keys_them_by_issuer_and_subject(
        client: FlaskClient, fake: FakeProvider) -> None:
    response = fake_sign_in(client, fake, next_path="/sessions")
    assert response.status_code == 302 and response.headers["Location"] == "/sessions"
    home = client.get("/").get_data(as_text=True)
    assert "Welcome, Pat Example" in home and "pat@example.org" in home
    user = db.session.scalars(db.select(User)).one()
    from sso.models import SsoIdentity

    identity = db.session.scalars(db.select(SsoIdentity)).one()
    assert (identity.issuer, identity.subject, identity.user_id) == (fake.issuer, "subject-1", user.id)
    assert db.session.scalars(db.select(SignInAttempt)).one().outcome == "success"
    assert fake.hits == {"discovery": 1, "jwks": 1, "token": 1}


def test_signature_by_another_key_with_a_known_kid(client: FlaskClient, fake: FakeProvider) -> None:
    forged = KEY_B.as_dict(private=True) | {"kid": "key-a"}
    from joserfc.jwk import RSAKey

    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce), RSAKey.import_key(forged))
    _assert_refused(client, fake, "signature")


def test_unknown_kid_fetches_the_keys_once_more_then_refuses(client: FlaskClient, fake: FakeProvider) -> None:
    fake_sign_in(client, fake)  # warm: discovery + JWKS cached
    client.post("/logout", data={"csrf_token": _csrf(client)})
    db.session.execute(db.delete(SignInAttempt))
    db.session.execute(db.delete(AuditEvent))
    db.session.execute(db.delete(User))
    db.session.commit()
    jwks_before = fake.hits["jwks"]
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce), KEY_B)
    _assert_refused(client, fake, "signature")
    assert fake.hits["jwks"] == jwks_before + 1


def test_rotated_key_is_found_by_refetching_the_keys_once(client: FlaskClient, fake: FakeProvider) -> None:
    fake_sign_in(client, fake)
    fake.published = [KEY_A, KEY_B]
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce), KEY_B)
    client.post("/logout", data={"csrf_token": _csrf(client)})
    assert fake_sign_in(client, fake).status_code == 302
    assert fake.hits["jwks"] == 2 and fake.hits["discovery"] == 1
    client.post("/logout", data={"csrf_token": _csrf(client)})
    assert fake_sign_in(client, fake).status_code == 302
    assert fake.hits["jwks"] == 2  # not on every login


def test_alg_none_is_refused(client: FlaskClient, fake: FakeProvider) -> None:
    fake.make_id_token = lambda nonce: f"{_b64({'alg': 'none', 'kid': 'key-a'})}.{_b64(fake.claims(nonce))}."
    _assert_refused(client, fake, "algorithm")


def test_hmac_signed_with_the_public_key_is_refused(client: FlaskClient, fake: FakeProvider) -> None:
    import hashlib
    import hmac

    def forged(nonce: str) -> str:
        signing_input = f"{_b64({'alg': 'HS256', 'kid': 'key-a'})}.{_b64(fake.claims(nonce))}"
        secret = KEY_A.as_pem(private=False)
        signature = base64.urlsafe_b64encode(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
        return f"{signing_input}.{signature.rstrip(b'=').decode()}"

    fake.make_id_token = forged
    _assert_refused(client, fake, "algorithm")


def test_wrong_issuer(client: FlaskClient, fake: FakeProvider) -> None:
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, iss="https://evil.example"))
    _assert_refused(client, fake, "issuer")


def test_wrong_audience(client: FlaskClient, fake: FakeProvider) -> None:
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, aud="another-app"))
    _assert_refused(client, fake, "audience")


def test_expired_beyond_the_leeway(client: FlaskClient, fake: FakeProvider) -> None:
    now = int(time.time())
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, iat=now - 7200, nbf=now - 7200, exp=now - 61))
    _assert_refused(client, fake, "lifetime")


def test_expired_within_the_leeway_is_accepted(client: FlaskClient, fake: FakeProvider) -> None:
    now = int(time.time())
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, iat=now - 3600, nbf=now - 3600, exp=now - 30))
    assert fake_sign_in(client, fake).status_code == 302


def test_not_yet_valid_nbf(client: FlaskClient, fake: FakeProvider) -> None:
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, nbf=int(time.time()) + 300))
    _assert_refused(client, fake, "lifetime")


def test_issued_in_the_future_iat_with_clock_skew_beyond_the_leeway(client: FlaskClient,
                                                                     fake: FakeProvider) -> None:
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, iat=int(time.time()) + 300, nbf=None))
    _assert_refused(client, fake, "lifetime")
    attempt = db.session.scalars(db.select(SignInAttempt)).one()
    assert attempt.checks["clock_skew_seconds"] > 250  # the diagnostics show the skew seen


def test_nonce_mismatch(client: FlaskClient, fake: FakeProvider) -> None:
    fake.make_id_token = lambda nonce: fake.sign(fake.claims("not-the-nonce-we-sent"))
    _assert_refused(client, fake, "nonce")


def test_state_mismatch_is_refused_without_calling_the_token_endpoint(client: FlaskClient,
                                                                      fake: FakeProvider) -> None:
    code, _state = fake.authorize(start_sign_in(client, "fake"))
    response = client.get(f"/sso/callback?code={code}&state=forged-state")
    assert response.status_code == 400 and "state mismatch" in response.get_data(as_text=True)
    assert "token" not in fake.hits and client.get("/").status_code == 302


def test_state_from_another_browser_is_refused(app, client: FlaskClient, fake: FakeProvider) -> None:  # type: ignore[no-untyped-def]
    code, state = fake.authorize(start_sign_in(client, "fake"))
    victim = app.test_client()  # login CSRF: the attacker's callback URL opened in someone else's browser
    response = victim.get(f"/sso/callback?code={code}&state={state}")
    assert response.status_code == 400 and "another browser" in response.get_data(as_text=True)
    assert victim.get("/").status_code == 302


def test_a_replayed_callback_is_refused(client: FlaskClient, fake: FakeProvider) -> None:
    code, state = fake.authorize(start_sign_in(client, "fake"))
    assert client.get(f"/sso/callback?code={code}&state={state}").status_code == 302
    client.post("/logout", data={"csrf_token": _csrf(client)})
    replay = client.get(f"/sso/callback?code={code}&state={state}")
    assert replay.status_code == 400 and client.get("/").status_code == 302
    assert fake.hits["token"] == 1
    assert db.session.scalar(db.select(db.func.count()).select_from(PendingFlowEntry)) == 0


def test_a_replayed_code_with_a_fresh_state_is_refused_by_the_provider(client: FlaskClient,
                                                                       fake: FakeProvider) -> None:
    code, state = fake.authorize(start_sign_in(client, "fake"))
    challenge = fake.codes[code]
    assert client.get(f"/sso/callback?code={code}&state={state}").status_code == 302
    client.post("/logout", data={"csrf_token": _csrf(client)})
    _code2, state2 = fake.authorize(start_sign_in(client, "fake"))
    fake.codes[code] = challenge  # the old code again, with a new flow: the PKCE verifier no longer matches
    response = client.get(f"/sso/callback?code={code}&state={state2}")
    assert response.status_code == 502 and "refused the sign-in" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_provider_down_or_slow_gives_a_page_not_a_500(app, client: FlaskClient, fake: FakeProvider) -> None:  # type: ignore[no-untyped-def]
    app.config["SSO_HTTP_TIMEOUT"] = 0.5
    code, state = fake.authorize(start_sign_in(client, "fake"))
    fake.delay = 1.0
    response = client.get(f"/sso/callback?code={code}&state={state}")
    assert response.status_code == 502 and "did not answer" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    fake.stop()
    provider = db.session.scalars(db.select(SsoProvider)).one()
    from sso.oidc import forget_provider

    forget_provider(provider.id)
    down = client.get("/sso/login/fake")
    assert down.status_code == 502 and "could not be reached" in down.get_data(as_text=True)


def test_provider_error_on_the_redirect_is_shown_and_audited(client: FlaskClient, fake: FakeProvider) -> None:
    _code, state = fake.authorize(start_sign_in(client, "fake"))
    response = client.get(f"/sso/callback?error=access_denied&error_description=x&state={state}")
    assert response.status_code == 401 and "access_denied" in response.get_data(as_text=True)


def test_users_are_not_created_unless_allowed_and_get_a_clear_page(client: FlaskClient,
                                                                  fake: FakeProvider) -> None:
    enable_sso(create_users=False)
    response = fake_sign_in(client, fake)
    assert response.status_code == 403
    assert "Your account has not been added" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302 and db.session.scalar(db.select(db.func.count()).select_from(User)) == 0


def test_disabled_users_are_refused(client: FlaskClient, fake: FakeProvider) -> None:
    assert fake_sign_in(client, fake).status_code == 302
    client.post("/logout", data={"csrf_token": _csrf(client)})
    user = db.session.scalars(db.select(User)).one()
    user.active = False
    db.session.commit()
    response = fake_sign_in(client, fake)
    assert response.status_code == 403 and "disabled" in response.get_data(as_text=True)


def test_identity_is_never_matched_by_email(client: FlaskClient, fake: FakeProvider) -> None:
    from tests.conftest import make_user

    make_user("pat@example.org", "local-password-1", "Administrator")
    response = fake_sign_in(client, fake)  # same email, unknown (issuer, sub): not this admin
    assert response.status_code == 403 and "already uses this email" in response.get_data(as_text=True)


def test_profile_updates_at_each_sign_in_and_missing_email_falls_back(client: FlaskClient,
                                                                     fake: FakeProvider) -> None:
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, email=None, preferred_username=None))
    assert fake_sign_in(client, fake).status_code == 302
    user = db.session.scalars(db.select(User)).one()
    assert user.email == "subject-1@127.0.0.1"
    client.post("/logout", data={"csrf_token": _csrf(client)})
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, name="Pat Renamed"))
    assert fake_sign_in(client, fake).status_code == 302
    db.session.expire_all()
    user = db.session.scalars(db.select(User)).one()
    assert (user.display_name, user.email) == ("Pat Renamed", "pat@example.org")


def _csrf(client: FlaskClient) -> str:
    from tests.conftest import csrf_token

    return csrf_token(client, "/")


# -- rules without a full round trip: multi-tenant issuer and the Office 365 tenant -----------------------------

def _metadata(issuer: str) -> ProviderMetadata:
    from joserfc.jwk import KeySet

    metadata = ProviderMetadata("https://login.example/x", requests.Session())
    metadata._document = {"issuer": issuer, "jwks_uri": "unused"}
    metadata._keys = KeySet([KEY_A])
    metadata._keys_fetched_at = time.monotonic()
    return metadata


TID = "11111111-2222-3333-4444-555555555555"


def _entra_claims(**changes: object) -> dict:
    now = int(time.time())
    claims = {"iss": f"https://login.example/{TID}/v2.0", "aud": CLIENT_ID, "sub": "s", "oid": "o", "tid": TID,
              "iat": now, "nbf": now, "exp": now + 600, "nonce": "n"}
    claims.update(changes)
    return claims


def test_multi_tenant_issuer_is_checked_after_substituting_tid() -> None:
    from joserfc import jwt

    metadata = _metadata("https://login.example/{tenantid}/v2.0")
    good = jwt.encode({"alg": "RS256", "kid": "key-a"}, _entra_claims(), KEY_A)
    assert validate_id_token(good, metadata, client_id=CLIENT_ID, nonce="n")["tid"] == TID
    other = "99999999-2222-3333-4444-555555555555"
    forged = jwt.encode({"alg": "RS256", "kid": "key-a"}, _entra_claims(tid=other), KEY_A)
    with pytest.raises(IdTokenError) as failed:
        validate_id_token(forged, metadata, client_id=CLIENT_ID, nonce="n")
    assert failed.value.check == "issuer"


def test_office365_tokens_must_come_from_the_datasource_tenant() -> None:
    from joserfc import jwt

    provider = SsoProvider(name="contoso", kind=SsoProvider.OFFICE365)
    client = ProviderClient(provider, "https://login.example/x", CLIENT_ID, "s", "openid", requests.Session(),
                            tenant_id="99999999-2222-3333-4444-555555555555",
                            metadata_override=_metadata("https://login.example/{tenantid}/v2.0"))
    token = jwt.encode({"alg": "RS256", "kid": "key-a"}, _entra_claims(), KEY_A)
    with pytest.raises(IdTokenError) as failed:
        client.validate(token, nonce="n", leeway=60)
    assert failed.value.check == "tenant"


@pytest.mark.parametrize("evil", ["//evil.example", "/\\evil.example", "https://evil.example", "javascript:alert(1)"])
def test_next_is_kept_through_the_round_trip_only_as_a_same_site_path(client: FlaskClient, fake: FakeProvider,
                                                                      evil: str) -> None:
    from urllib.parse import quote

    response = fake_sign_in(client, fake, next_path=quote(evil, safe=""))
    assert response.status_code == 302 and response.headers["Location"] == "/", evil


# -- back-channel logout (generic providers) ----------------------------------------------------------------

BACKCHANNEL = {"http://schemas.openid.net/event/backchannel-logout": {}}


def _logout_token(fake: FakeProvider, key=KEY_A, **changes: object) -> str:  # type: ignore[no-untyped-def]
    claims = {"iss": fake.issuer, "aud": CLIENT_ID, "iat": int(time.time()), "jti": "j1", "events": BACKCHANNEL,
              "sid": "idp-session-1", "sub": "subject-1"}
    claims.update(changes)
    return fake.sign({k: v for k, v in claims.items() if v is not None}, key)


@pytest.mark.parametrize("case", ["no events", "nonce", "audience", "issuer", "signature", "old", "no sid or sub",
                                  "garbage"])
def test_back_channel_logout_refuses_bad_logout_tokens(app, client: FlaskClient, fake: FakeProvider,  # type: ignore[no-untyped-def]
                                                       case: str) -> None:
    assert fake_sign_in(client, fake).status_code == 302
    token = {
        "no events": lambda: _logout_token(fake, events=None),
        "nonce": lambda: _logout_token(fake, nonce="n"),
        "audience": lambda: _logout_token(fake, aud="other"),
        "issuer": lambda: _logout_token(fake, iss="https://evil.example"),
        "signature": lambda: _logout_token(fake, key=KEY_B),
        "old": lambda: _logout_token(fake, iat=int(time.time()) - 3600),
        "no sid or sub": lambda: _logout_token(fake, sid=None, sub=None),
        "garbage": lambda: "not.a.jwt",
    }[case]()
    response = app.test_client().post("/sso/back-channel-logout/fake", data={"logout_token": token})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"
    assert client.get("/").status_code == 200  # the session lives on


def test_back_channel_logout_ends_the_matching_sessions(app, client: FlaskClient, fake: FakeProvider) -> None:  # type: ignore[no-untyped-def]
    assert fake_sign_in(client, fake).status_code == 302
    response = app.test_client().post("/sso/back-channel-logout/fake", data={"logout_token": _logout_token(fake)})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert client.get("/").status_code == 302
    assert app.test_client().post("/sso/back-channel-logout/nobody", data={"logout_token": "x"}).status_code == 400


# -- issue 10: audiences (23), discovery validation (20), key refreshes (19), front-channel logout (14) -------------

@pytest.mark.parametrize("changes", [
    {"aud": [CLIENT_ID, "another-api"]},                        # another audience, no azp
    {"aud": [CLIENT_ID, "another-api"], "azp": CLIENT_ID},      # another audience we do not trust
    {"aud": [CLIENT_ID, CLIENT_ID]},                            # several audiences without azp
    {"aud": CLIENT_ID, "azp": "another-app"},                   # obtained by another client
], ids=["extra-audience", "extra-audience-with-azp", "several-without-azp", "foreign-azp"])
def test_additional_audiences_and_a_foreign_azp_are_refused(client: FlaskClient, fake: FakeProvider,
                                                            changes: dict) -> None:
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, **changes))
    _assert_refused(client, fake, "audience")


def test_our_client_as_the_only_audience_in_a_list_with_azp_is_accepted(client: FlaskClient,
                                                                        fake: FakeProvider) -> None:
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, aud=[CLIENT_ID], azp=CLIENT_ID))
    assert fake_sign_in(client, fake).status_code == 302 and client.get("/").status_code == 200


def test_back_channel_logout_token_with_an_extra_audience_is_refused(app, client: FlaskClient,  # type: ignore[no-untyped-def]
                                                                     fake: FakeProvider) -> None:
    assert fake_sign_in(client, fake).status_code == 302
    token = _logout_token(fake, aud=[CLIENT_ID, "another-api"])
    response = app.test_client().post("/sso/back-channel-logout/fake", data={"logout_token": token})
    assert response.status_code == 400 and "aud" in response.get_json()["error_description"]
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("changes,shown", [
    ({"jwks_uri": None}, "lacks jwks_uri"),
    ({"token_endpoint": None, "authorization_endpoint": None}, "lacks authorization_endpoint, token_endpoint"),
    ({"issuer": None}, "lacks issuer"),
    ({"authorization_endpoint": 42}, "lacks authorization_endpoint"),
    ({"issuer": "https://impostor.example"}, "https://impostor.example"),
])
def test_an_unusable_discovery_document_shows_the_502_page(client: FlaskClient, fake: FakeProvider,
                                                           changes: dict, shown: str) -> None:
    fake.discovery_changes = changes
    response = client.get("/sso/login/fake")
    page = response.get_data(as_text=True)
    assert response.status_code == 502, page[:300]
    assert "Sign-in failed" in page and "Reference:" in page and shown in page
    attempt = db.session.scalars(db.select(SignInAttempt)).one()
    assert attempt.reason.startswith("discovery:")


def test_a_failed_discovery_is_not_asked_again_on_every_request(client: FlaskClient, fake: FakeProvider) -> None:
    fake.discovery_changes = {"jwks_uri": None}
    for _ in range(5):
        assert client.get("/sso/login/fake").status_code == 502
    assert fake.hits["discovery"] == 1  # remembered with a back-off


def test_unknown_kids_refresh_the_keys_at_most_once_a_minute(app, client: FlaskClient,  # type: ignore[no-untyped-def]
                                                             fake: FakeProvider) -> None:
    from joserfc.jwk import RSAKey

    assert fake_sign_in(client, fake).status_code == 302
    assert fake.hits["jwks"] == 1
    for number in range(10):  # an attacker posting logout tokens that name ever new key ids
        stranger = RSAKey.generate_key(2048, parameters={"kid": f"unknown-{number}"}, private=True)
        response = app.test_client().post("/sso/back-channel-logout/fake",
                                          data={"logout_token": _logout_token(fake, key=stranger)})
        assert response.status_code == 400
    assert fake.hits["jwks"] == 2
    assert client.get("/").status_code == 200


def test_front_channel_logout_without_sid_changes_nothing(client: FlaskClient, fake: FakeProvider) -> None:
    assert fake_sign_in(client, fake).status_code == 302
    response = client.get("/sso/front-channel-logout")  # what a link or <img> on any site makes the browser send
    assert response.status_code == 200 and client.get("/").status_code == 200
    assert client.get(f"/sso/front-channel-logout?iss={fake.issuer}").status_code == 200
    assert client.get("/").status_code == 200


def test_front_channel_logout_requires_iss_from_a_provider_that_sends_it(client: FlaskClient,
                                                                        fake: FakeProvider) -> None:
    from sso.oidc import forget_provider

    fake.discovery_changes = {"frontchannel_logout_supported": True, "frontchannel_logout_session_supported": True}
    forget_provider(db.session.scalars(db.select(SsoProvider)).one().id)
    assert fake_sign_in(client, fake).status_code == 302
    assert client.get("/sso/front-channel-logout?sid=idp-session-1").status_code == 200
    assert client.get("/").status_code == 200  # no iss: not the provider's call
    assert client.get("/sso/front-channel-logout?sid=idp-session-1&iss=https://other.example").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get(f"/sso/front-channel-logout?sid=idp-session-1&iss={fake.issuer}").status_code == 200
    assert client.get("/").status_code == 302


def test_front_channel_logout_from_a_provider_without_iss_ends_only_the_own_session(app, client: FlaskClient,  # type: ignore[no-untyped-def]
                                                                                   fake: FakeProvider) -> None:
    assert fake_sign_in(client, fake).status_code == 302
    other = app.test_client()
    assert other.get("/sso/front-channel-logout?sid=idp-session-1").status_code == 200
    assert client.get("/").status_code == 200  # another browser without iss cannot end it
    assert client.get("/sso/front-channel-logout?sid=idp-session-1").status_code == 200
    assert client.get("/").status_code == 302


# -- issue 10 point 11: a generic provider's e-mail counts only when verified --------------------------------------

@pytest.mark.parametrize("verified", [None, False, "false"], ids=["absent", "false", "string-false"])
def test_an_unverified_email_is_not_the_users_address_nor_meets_allow_lists(app, client: FlaskClient,  # type: ignore[no-untyped-def]
                                                                          fake: FakeProvider, verified) -> None:
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, email="ceo@victim.example",
                                                             preferred_username="ceo@victim.example",
                                                             email_verified=verified))
    assert fake_sign_in(client, fake).status_code == 302
    user = db.session.scalars(db.select(User)).one()
    assert user.email == "subject-1@127.0.0.1"  # the stable placeholder, not the claimed address
    assert client.get("/auth/verify?allowed_domains=victim.example").status_code == 403
    assert client.get("/auth/verify?allowed_emails=ceo@victim.example").status_code == 403


@pytest.mark.parametrize("verified", [True, "true"])
def test_a_verified_email_is_used(client: FlaskClient, fake: FakeProvider, verified) -> None:  # type: ignore[no-untyped-def]
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, email_verified=verified))
    assert fake_sign_in(client, fake).status_code == 302
    assert db.session.scalars(db.select(User)).one().email == "pat@example.org"
    assert client.get("/auth/verify?allowed_domains=example.org").status_code == 200


def test_a_provider_marked_as_omitting_email_verified_is_trusted(client: FlaskClient, fake: FakeProvider) -> None:
    provider = db.session.scalars(db.select(SsoProvider)).one()
    provider.trust_unverified_email = True
    db.session.commit()
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, email_verified=None))
    assert fake_sign_in(client, fake).status_code == 302
    assert db.session.scalars(db.select(User)).one().email == "pat@example.org"
    assert client.get("/auth/verify?allowed_domains=example.org").status_code == 200


def test_a_later_unverified_email_does_not_replace_the_address(client: FlaskClient, fake: FakeProvider) -> None:
    assert fake_sign_in(client, fake).status_code == 302
    client.post("/logout", data={"csrf_token": _csrf(client)})
    fake.make_id_token = lambda nonce: fake.sign(fake.claims(nonce, email="ceo@victim.example", email_verified=None))
    assert fake_sign_in(client, fake).status_code == 302
    db.session.expire_all()
    assert db.session.scalars(db.select(User)).one().email != "ceo@victim.example"
    assert client.get("/auth/verify?allowed_domains=victim.example").status_code == 403
