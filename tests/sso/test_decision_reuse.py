"""How long the proxy may reuse an /auth/verify answer (issue 15, point 7): `X-Accel-Expires` on every answer, the
same from the Flask view and the WSGI fast path, on the database session store and on Redis. Only an allowed or
public 200 says more than 0, never past FORWARD_AUTH_CACHE_SECONDS, the session's end or the allowing rule's
auth-age bound; 0 for 401, 403, a step-up, the redirect mode's 302s and for paths whose rules read the client
address. Through real nginx: tests/sso/test_nginx_forward_auth.py."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.models import User
from policies import decisions, service
from tests.conftest import USER_EMAIL, USER_PASSWORD, sign_in

DOCUMENT: dict[str, Any] = {
    "rules": [
        {"id": "r-health", "name": "Health", "host": "*", "paths": ["/healthz"], "action": "public"},
        {"id": "r-lobby", "name": "Lobby", "host": "office.example.com", "paths": ["/lobby/"],
         "networks": ["127.0.0.0/8"], "action": "public"},
        {"id": "r-office", "name": "Office only", "host": "office.example.com", "paths": ["/desk/"],
         "networks": ["127.0.0.0/8"]},
        {"id": "r-fresh", "name": "Fresh sign-in", "host": "*", "paths": ["/payroll/"],
         "criteria": {"max_auth_age_minutes": 15}},
        {"id": "r-writes", "name": "No writes", "host": "*", "methods": ["DELETE"], "action": "deny"},
    ],
}


@pytest.fixture
def app_env(store_env: dict[str, str]) -> dict[str, str]:
    return {"ALLOWED_REDIRECT_DOMAINS": ".example.com", "PUBLIC_BASE_URL": "https://sso.example.com", **store_env}


@pytest.fixture
def signed_in(client: FlaskClient, plain_user: User, sessions: Any) -> FlaskClient:
    decisions.forget_recent()
    service.save(DOCUMENT, actor="admin@example.com")
    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    return client


def ask(client: FlaskClient, url: str, method: str = "GET", query: str = "", verb: str = "GET") -> Any:
    return client.open(f"/auth/verify{query}", method=verb,
                       headers={"X-Original-Method": method, "X-Original-URL": url})


def view_and_fast_anonymous(client: FlaskClient, url: str) -> list[Any]:
    """Without a session the fast path answers every public GET: a HEAD (same headers) goes to the view."""
    answers = [ask(client, url, verb="HEAD"), ask(client, url)]
    assert [fast(answer) for answer in answers] == [False, True]
    return answers


def fast(response: Any) -> bool:
    """Answered by the WSGI fast path (the Flask view adds the security headers)."""
    return "Content-Security-Policy" not in response.headers


def view_then_fast(client: FlaskClient, url: str, query: str = "") -> list[Any]:
    answers = [ask(client, url, query=query), ask(client, url, query=query)]
    assert [fast(answer) for answer in answers] == [False, True]
    return answers


def test_an_allowed_answer_may_be_reused_for_the_configured_seconds(app: Flask, signed_in: FlaskClient) -> None:
    for answer in view_then_fast(signed_in, "https://app.example.com/reports"):
        assert answer.status_code == 200 and answer.headers["X-Accel-Expires"] == "5"  # the default
        assert answer.headers["Cache-Control"] == "no-store"  # no browser or other cache keeps it
    app.config["FORWARD_AUTH_CACHE_SECONDS"] = 30
    assert {ask(signed_in, "https://app.example.com/reports").headers["X-Accel-Expires"] for _ in range(2)} == {"30"}
    app.config["FORWARD_AUTH_CACHE_SECONDS"] = 0  # off
    assert {ask(signed_in, "https://app.example.com/reports").headers["X-Accel-Expires"] for _ in range(2)} == {"0"}
    legacy = view_then_fast(signed_in, "https://app.example.com/x", "?allowed_domains=example.com")
    assert [answer.headers["X-Accel-Expires"] for answer in legacy] == ["0", "0"]
    app.config["FORWARD_AUTH_CACHE_SECONDS"] = 5
    legacy = [ask(signed_in, "https://app.example.com/x", query="?allowed_domains=example.com") for _ in range(2)]
    assert [answer.headers["X-Accel-Expires"] for answer in legacy] == ["5", "5"]


def test_refusals_are_never_reused(app: Flask, signed_in: FlaskClient, client: FlaskClient) -> None:
    app.config["FORWARD_AUTH_CACHE_SECONDS"] = 30
    denied = ask(signed_in, "https://app.example.com/reports", "DELETE")
    assert denied.status_code == 403 and denied.headers["X-Accel-Expires"] == "0"
    to_denied = ask(signed_in, "https://app.example.com/reports", "DELETE", "?redirect=1")
    assert to_denied.status_code == 302 and to_denied.headers["X-Accel-Expires"] == "0"
    legacy = ask(signed_in, "https://app.example.com/reports", query="?allowed_domains=elsewhere.org")
    assert legacy.status_code == 403 and legacy.headers["X-Accel-Expires"] == "0"
    with signed_in.session_transaction() as session:  # signed in 20 minutes ago: /payroll/ asks for a step-up
        session["identity"] = {**session["identity"], "auth_time": int(time.time()) - 1200}
    step_up = ask(signed_in, "https://app.example.com/payroll/may")
    assert step_up.status_code == 401 and step_up.headers["X-Accel-Expires"] == "0"
    step_up = ask(signed_in, "https://app.example.com/payroll/may", query="?redirect=1")
    assert step_up.status_code == 302 and step_up.headers["X-Accel-Expires"] == "0"
    signed_in.delete_cookie("gw_session")
    for query in ("", "?redirect=1"):
        stranger = ask(signed_in, "https://app.example.com/reports", query=query)
        assert stranger.status_code in (401, 302) and stranger.headers["X-Accel-Expires"] == "0"
    bad_audience = ask(client, "https://app.example.com/healthz", query="?audience=-")
    assert bad_audience.status_code == 200  # public, and no identity to sign for


def test_the_bound_ends_before_the_allowing_rules_auth_age_does(signed_in: FlaskClient) -> None:
    """Signed in 15 minutes less 4.5 s ago, under a 15-minute rule: the allow holds 4.5 s more, so it may be
    reused for 3 s (a whole second less for nginx's rounding), less any second the test itself took."""
    with signed_in.session_transaction() as session:
        session["identity"] = {**session["identity"], "auth_time": time.time() - 900 + 4.5}
    for answer in view_then_fast(signed_in, "https://app.example.com/payroll/may"):
        assert answer.status_code == 200 and 1 <= int(answer.headers["X-Accel-Expires"]) <= 3
    other = ask(signed_in, "https://app.example.com/reports")  # the same session, no auth-age rule
    assert other.headers["X-Accel-Expires"] == "5"


def test_the_bound_ends_before_the_session_does(signed_in: FlaskClient, sessions: Any) -> None:
    from sso.sessions import hash_token

    record = sessions.get(hash_token(signed_in.get_cookie("gw_session").value))
    record.expires_at = time.time() + 4.5
    sessions.save(record)
    for answer in view_then_fast(signed_in, "https://app.example.com/reports"):
        assert answer.status_code == 200 and 1 <= int(answer.headers["X-Accel-Expires"]) <= 3


def test_paths_whose_rules_read_the_client_address_are_never_reused(signed_in: FlaskClient,
                                                                    client: FlaskClient) -> None:
    for answer in view_then_fast(signed_in, "https://office.example.com/desk/1"):
        assert answer.status_code == 200 and answer.headers["X-Accel-Expires"] == "0"
    same_host = ask(signed_in, "https://office.example.com/reports")  # no networks rule can match this path
    assert same_host.status_code == 200 and same_host.headers["X-Accel-Expires"] == "5"
    signed_in.delete_cookie("gw_session")
    lobby = view_and_fast_anonymous(client, "https://office.example.com/lobby/")
    assert [(answer.status_code, answer.headers["X-Accel-Expires"]) for answer in lobby] == [(200, "0")] * 2


def test_public_answers_may_be_reused(signed_in: FlaskClient, client: FlaskClient) -> None:
    for answer in view_then_fast(signed_in, "https://app.example.com/healthz"):
        assert answer.status_code == 200 and answer.headers["X-Accel-Expires"] == "5"
    signed_in.delete_cookie("gw_session")
    anonymous = view_and_fast_anonymous(client, "https://app.example.com/healthz")
    assert [(answer.status_code, answer.headers["X-Accel-Expires"]) for answer in anonymous] == [(200, "5")] * 2
