"""Forward auth (issue 5, point 8): /auth/verify answers, the assertion verifies against /.well-known/jwks.json,
allow-lists and policies, and return URLs only to ALLOWED_REDIRECT_DOMAINS."""

from __future__ import annotations

import http.client
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet

from core.extensions import db
from core.models import User
from sso.models import SigningKey
from tests.conftest import USER_EMAIL, USER_PASSWORD, LiveServer, csrf_token, sign_in
from tests.sso_helpers import enable_sso

EVIL = ["//evil.example", "/\\evil.example", "https://evil.example/x", "javascript:alert(1)",
        "https://app.example.com.evil.example/", "https://user@evil.example/", "http://evil.example\\@app.example.com/"]


@pytest.fixture
def app_env() -> dict[str, str]:
    return {"ALLOWED_REDIRECT_DOMAINS": ".example.com,tools.internal", "PUBLIC_BASE_URL": "https://sso.example.com"}


@pytest.fixture
def signed_in(client: FlaskClient, plain_user: User) -> FlaskClient:
    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    return client


def test_not_signed_in_is_401_without_creating_a_session(client: FlaskClient) -> None:
    response = client.get("/auth/verify")
    assert response.status_code == 401 and "Set-Cookie" not in response.headers


def test_signed_in_gets_the_headers_and_a_verifiable_assertion(signed_in: FlaskClient) -> None:
    response = signed_in.get("/auth/verify", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host":
                                                      "app.example.com", "X-Forwarded-Uri": "/reports"})
    assert response.status_code == 200
    headers = response.headers
    assert headers["X-Auth-Request-User"] == USER_EMAIL and headers["X-Auth-Request-Email"] == USER_EMAIL
    assert headers["X-Auth-Request-Name"] == "Paul Plain" and headers["X-Auth-Request-Groups"] == ""
    keys = KeySet.import_key_set(signed_in.get("/.well-known/jwks.json").get_json())
    token = jwt.decode(headers["X-Auth-Request-Assertion"], keys, algorithms=["ES256"])
    assert token.claims["email"] == USER_EMAIL and token.claims["iss"] == "https://sso.example.com"
    assert token.claims["aud"] == "app.example.com" and token.claims["exp"] - token.claims["iat"] == 120
    assert "BEGIN" not in db.session.scalars(db.select(SigningKey)).one().private_key  # stored encrypted
    again = signed_in.get("/auth/verify", headers={"X-Original-URL": "https://app.example.com/reports"})
    assert again.headers["X-Auth-Request-Assertion"] == headers["X-Auth-Request-Assertion"]  # re-used, not re-signed
    assert "Content-Security-Policy" not in again.headers  # answered by the WSGI fast path ...
    for name in ("User", "Email", "Name", "Groups"):  # ... with the same headers as the Flask view
        assert again.headers[f"X-Auth-Request-{name}"] == headers[f"X-Auth-Request-{name}"]


def test_the_fast_path_sees_a_revocation_on_the_next_request(signed_in: FlaskClient, plain_user: User) -> None:
    from sso.sessions import store

    assert signed_in.get("/auth/verify").status_code == 200  # signs and caches the assertion
    fast = signed_in.get("/auth/verify")
    assert fast.status_code == 200 and "Content-Security-Policy" not in fast.headers
    assert signed_in.get("/auth/verify?allowed_emails=x@y.z").status_code == 403  # rules still apply
    store().end_for_user(plain_user.id)
    assert signed_in.get("/auth/verify").status_code == 401


def test_redirect_mode_returns_to_the_original_url_only_for_allowed_hosts(client: FlaskClient) -> None:
    response = client.get("/auth/verify?redirect=1", headers={
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "/a?b=1"})
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.netloc == "sso.example.com" and location.path == "/auth/start"
    assert parse_qs(location.query)["rd"] == ["https://app.example.com/a?b=1"]
    nginx = client.get("/auth/verify?redirect=1", headers={"X-Original-URL": "https://tools.internal/x"})
    assert parse_qs(urlsplit(nginx.headers["Location"]).query)["rd"] == ["https://tools.internal/x"]
    for evil in ("https://evil.example/", "https://app.example.com.evil.example/", "javascript:alert(1)"):
        response = client.get("/auth/verify?redirect=1", headers={"X-Original-URL": evil})
        assert response.status_code == 302 and "rd=" not in response.headers["Location"], evil


def test_start_signs_in_then_goes_back_to_the_app(client: FlaskClient, plain_user: User) -> None:
    response = client.get("/auth/start?rd=https://app.example.com/a")
    login = response.headers["Location"]
    assert login.startswith("/login?next=")
    next_path = parse_qs(urlsplit(login).query)["next"][0]
    assert next_path == "/auth/start?rd=https://app.example.com/a"
    from tests.conftest import csrf_token

    token = csrf_token(client, login)
    done = client.post(login, data={"email": USER_EMAIL, "password": USER_PASSWORD, "csrf_token": token})
    assert done.headers["Location"] == next_path
    assert client.get(next_path).headers["Location"] == "https://app.example.com/a"


@pytest.mark.parametrize("evil", EVIL)
def test_bad_return_urls_never_leave_the_gateway(signed_in: FlaskClient, evil: str) -> None:
    response = signed_in.get("/auth/start", query_string={"rd": evil})
    assert response.headers["Location"] == "/", evil
    login = signed_in.get("/login", query_string={"next": evil})
    assert login.headers["Location"] == "/", evil


def test_allow_lists_by_query(signed_in: FlaskClient) -> None:
    assert signed_in.get("/auth/verify?allowed_domains=example.com").status_code == 200
    assert signed_in.get("/auth/verify?allowed_domains=contoso.example").status_code == 403
    assert signed_in.get(f"/auth/verify?allowed_emails=x@y.z,{USER_EMAIL.upper()}").status_code == 200
    assert signed_in.get("/auth/verify?allowed_emails=x@y.z").status_code == 403
    assert signed_in.get("/auth/verify?allowed_groups=some-group").status_code == 403  # no groups


def test_allow_lists_by_named_policy(signed_in: FlaskClient) -> None:
    enable_sso(policies={"staff": {"domains": ["example.com"]}, "admins": {"emails": ["boss@example.com"]}})
    assert signed_in.get("/auth/verify?policy=staff").status_code == 200
    assert signed_in.get("/auth/verify?policy=admins").status_code == 403
    assert signed_in.get("/auth/verify?policy=unknown").status_code == 403


def test_groups_from_the_session_are_matched(signed_in: FlaskClient) -> None:
    with signed_in.session_transaction() as session:
        session["identity"] = {**session["identity"], "groups": ["g-1", "G-2"]}
    response = signed_in.get("/auth/verify?allowed_groups=g-2")
    assert response.status_code == 200 and response.headers["X-Auth-Request-Groups"] == "g-1,G-2"


def test_cookie_domain_covers_sibling_subdomains(app, client: FlaskClient) -> None:  # type: ignore[no-untyped-def]
    app.config["SESSION_COOKIE_DOMAIN"] = ".example.com"
    response = client.get("/login", base_url="https://sso.example.com")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("gw_session="))
    assert "Domain=example.com" in cookie or "Domain=.example.com" in cookie


def test_https_urls_behind_a_tls_terminating_proxy(app, client: FlaskClient) -> None:  # type: ignore[no-untyped-def]
    from werkzeug.middleware.proxy_fix import ProxyFix  # what TRUSTED_PROXY_HOPS=1 installs

    app.config["PUBLIC_BASE_URL"] = None
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)
    response = client.get("/auth/verify?redirect=1", headers={"X-Forwarded-Proto": "https",
                                                               "X-Forwarded-Host": "sso.corp"})
    assert response.headers["Location"].startswith("https://sso.corp/auth/start")


def _kid(signed_in: FlaskClient, host: str) -> str:
    """The kid that signed a fresh assertion (a new audience is never served from the assertion cache)."""
    from joserfc.jws import extract_compact

    response = signed_in.get("/auth/verify", headers={"X-Original-URL": f"https://{host}/"})
    assert response.status_code == 200
    token = response.headers["X-Auth-Request-Assertion"]
    keys = KeySet.import_key_set(signed_in.get("/.well-known/jwks.json").get_json())
    assert jwt.decode(token, keys, algorithms=["ES256"]).claims["aud"] == host  # verifies with the published keys
    return str(extract_compact(token.encode()).protected["kid"])


def test_key_rotation_publishes_first_signs_later_and_prunes_only_when_safe(app, signed_in: FlaskClient) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from core.models import AuditEvent, utcnow

    app.config["SSO_KEYS_CACHE_SECONDS"] = 0  # as if every process had re-read the keys
    runner = app.test_cli_runner()
    first = _kid(signed_in, "a.example.com")
    result = runner.invoke(args=["sso", "keys", "rotate"])
    assert result.exit_code == 0 and "Added key" in result.output
    new = db.session.scalars(db.select(SigningKey).where(SigningKey.kid != first)).one()
    assert {k["kid"] for k in signed_in.get("/.well-known/jwks.json").get_json()["keys"]} == {first, new.kid}
    assert _kid(signed_in, "b.example.com") == first  # published, but not signing for 10 minutes
    listing = runner.invoke(args=["sso", "keys", "list"]).output
    assert f"{first}\t" in listing and "signing" in listing and "next" in listing

    old = db.session.get(SigningKey, first)
    old.activates_at = utcnow() - timedelta(minutes=20)  # ... time passes: the first key is older,
    new.activates_at = utcnow()  # and the new one's 10 minutes are up
    db.session.commit()
    assert _kid(signed_in, "c.example.com") == new.kid
    assert "Removed 0 key(s)" in runner.invoke(args=["sso", "keys", "prune"]).output  # old assertions may live
    assert len(signed_in.get("/.well-known/jwks.json").get_json()["keys"]) == 2

    new.activates_at = utcnow() - timedelta(minutes=5)  # every assertion of the old key has expired
    db.session.commit()
    assert f"Removed 1 key(s): {first}" in runner.invoke(args=["sso", "keys", "prune"]).output
    assert [k["kid"] for k in signed_in.get("/.well-known/jwks.json").get_json()["keys"]] == [new.kid]
    assert _kid(signed_in, "d.example.com") == new.kid
    actions = db.session.scalars(db.select(AuditEvent.action).where(AuditEvent.action.like("sso.key.%"))).all()
    assert sorted(actions) == ["sso.key.prune", "sso.key.rotate"]


# Issue 10, points 4, 7 and 8: a small answer whatever the group count, an audience always, no 500 on cookies.

ENTRA_GROUPS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"group-{i}")) for i in range(200)]  # Entra's maximum in a token


def _set_groups(client: FlaskClient, groups: list[str]) -> None:
    with client.session_transaction() as session:
        session["identity"] = {**session["identity"], "groups": groups}


def _claims(client: FlaskClient, token: str) -> dict:
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").get_json())
    return dict(jwt.decode(token, keys, algorithms=["ES256"]).claims)


def _answer_size(response) -> int:  # type: ignore[no-untyped-def]
    return sum(len(name) + len(value) + 4 for name, value in response.headers.items())


def test_a_200_group_user_gets_a_small_answer_listing_the_groups_the_rule_names(signed_in: FlaskClient) -> None:
    _set_groups(signed_in, ENTRA_GROUPS)
    app_url = {"X-Original-URL": "https://app.example.com/"}
    for wanted in (ENTRA_GROUPS[150], ENTRA_GROUPS[199]):
        for attempt in ("view", "fast path"):
            response = signed_in.get(f"/auth/verify?allowed_groups=x,{wanted.upper()}", headers=app_url)
            assert response.status_code == 200
            assert ("Content-Security-Policy" not in response.headers) == (attempt == "fast path")
            assert _answer_size(response) < 3000, attempt  # was ~17 KB: over nginx's 4 KB buffer
            listed = response.headers["X-Auth-Request-Groups"].split(",")
            assert listed[0] == wanted and 15 <= len(listed) <= 20 and set(listed) <= set(ENTRA_GROUPS)
            assert response.headers["X-Auth-Request-Groups-Overflow"] == "true"
            claims = _claims(signed_in, response.headers["X-Auth-Request-Assertion"])
            assert claims["groups"] == listed and claims["groups_overflow"] is True  # header and proof agree
    unnamed = signed_in.get("/auth/verify", headers=app_url)
    assert unnamed.headers["X-Auth-Request-Groups"].split(",") == ENTRA_GROUPS[:20]
    assert unnamed.headers["X-Auth-Request-Groups-Overflow"] == "true" and _answer_size(unnamed) < 3000
    assert signed_in.get(f"/auth/verify?allowed_groups={uuid.uuid4()}", headers=app_url).status_code == 403


def test_a_user_with_few_groups_gets_them_all_and_no_overflow_marker(signed_in: FlaskClient) -> None:
    _set_groups(signed_in, ENTRA_GROUPS[:20])
    for _ in range(2):
        response = signed_in.get("/auth/verify", headers={"X-Original-URL": "https://app.example.com/"})
        assert response.headers["X-Auth-Request-Groups"].split(",") == ENTRA_GROUPS[:20]
        assert "X-Auth-Request-Groups-Overflow" not in response.headers
        claims = _claims(signed_in, response.headers["X-Auth-Request-Assertion"])
        assert claims["groups"] == ENTRA_GROUPS[:20] and "groups_overflow" not in claims


def test_the_assertion_is_always_for_the_app_host_and_fails_elsewhere(signed_in: FlaskClient) -> None:
    from joserfc.errors import InvalidClaimError

    def aud(**headers: str) -> tuple[str, str]:
        response = signed_in.get("/auth/verify", headers=headers)
        assert response.status_code == 200
        token = response.headers["X-Auth-Request-Assertion"]
        return token, _claims(signed_in, token)["aud"]

    other, audience = aud(**{"X-Original-URL": "https://wiki.other.test:8443/page"})  # not in ALLOWED_REDIRECT_DOMAINS
    assert audience == "wiki.other.test"
    assert aud(**{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "App.Example.com"})[1] == "app.example.com"
    again, audience = aud(**{"X-Original-URL": "https://wiki.other.test/x"})  # the fast path keys on the audience
    assert again == other and audience == "wiki.other.test"
    assert aud(**{"X-Original-URL": "https://app.example.com/"})[1] == "app.example.com"
    assert aud()[1] == "sso.example.com"  # no original URL: the gateway's own host, no app's
    claims = _claims(signed_in, other)
    registry = jwt.JWTClaimsRegistry(iss={"essential": True, "value": "https://sso.example.com"},
                                     aud={"essential": True, "value": "app.example.com"})
    with pytest.raises(InvalidClaimError):  # README's check: replayed to another app, refused there
        registry.validate(claims)
    jwt.JWTClaimsRegistry(aud={"essential": True, "value": "wiki.other.test"}).validate(claims)


def test_a_rule_can_name_the_audience(signed_in: FlaskClient) -> None:
    for _ in range(2):
        response = signed_in.get("/auth/verify?audience=reports", headers={"X-Original-URL": "https://a.example.com/"})
        assert _claims(signed_in, response.headers["X-Auth-Request-Assertion"])["aud"] == "reports"
    for bad in ("", "re ports", "x\u00e9", "a" * 300, "-x"):
        response = signed_in.get("/auth/verify", query_string={"audience": bad})
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_audience", bad


def _raw_get(live_server: LiveServer, path: str, headers: dict[str, bytes]) -> int:
    """A request whose header bytes reach the server as sent (the test client would re-encode them)."""
    conn = http.client.HTTPConnection("127.0.0.1", int(live_server.url.rsplit(":", 1)[1]), timeout=10)
    conn.putrequest("GET", path)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.mark.parametrize("foreign", [b"other=\xff\xfe", b"other=\xc3\x28", b'other="\xff"', b"\xff=1", b"\xe9"])
def test_a_foreign_cookie_that_is_not_utf8_never_makes_a_500(signed_in: FlaskClient, live_server: LiveServer,
                                                             foreign: bytes) -> None:
    ours = signed_in.get_cookie("gw_session").value.encode()
    url = {"X-Original-URL": b"https://app.example.com/"}
    for cookie in (foreign + b"; gw_session=" + ours, b"gw_session=" + ours + b"; " + foreign):
        for _ in range(3):  # the view signs, then the fast path answers
            assert _raw_get(live_server, "/auth/verify", {"Cookie": cookie, **url}) == 200
    assert _raw_get(live_server, "/auth/verify", {"Cookie": foreign}) == 401
    assert _raw_get(live_server, "/auth/verify?redirect=1", {"Cookie": foreign, **url}) == 302
    assert _raw_get(live_server, "/auth/verify", {"Cookie": b"gw_session=\xff" + ours[1:]}) == 401


def test_an_unparseable_original_url_is_no_500(signed_in: FlaskClient, client: FlaskClient) -> None:
    for url in ("http://[abc/", "https://[::1/x", "http://a b/", "https://%zz/"):
        assert signed_in.get("/auth/verify", headers={"X-Original-URL": url}).status_code == 200, url
    signed_in.post("/logout", data={"csrf_token": csrf_token(signed_in, "/")})
    for url in ("http://[abc/", "https://[::1/x"):
        response = client.get("/auth/verify?redirect=1", headers={"X-Original-URL": url})
        assert response.status_code == 302 and "rd=" not in response.headers["Location"], url
