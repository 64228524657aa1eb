"""Forward auth (issue 5, point 8): /auth/verify answers, the assertion verifies against /.well-known/jwks.json,
allow-lists and policies, and return URLs only to ALLOWED_REDIRECT_DOMAINS."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet

from core.extensions import db
from core.models import User
from sso.models import SigningKey
from tests.conftest import USER_EMAIL, USER_PASSWORD, sign_in
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
