"""Issue 10, point 9: sign-in throttling per account with back-off, shared by every process (Redis with REDIS_URL,
else the database), and the same work for accounts that do not exist (no timing oracle)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.models import User
from sso.throttle import FREE_FAILURES
from tests.conftest import TEST_FERNET_KEY, USER_EMAIL, USER_PASSWORD, _build_app, csrf_token, make_user

_addresses = iter(f"10.9.{n // 250}.{n % 250 + 1}" for n in range(100000))


@pytest.fixture
def app_env(store_env: dict[str, str]) -> dict[str, str]:
    return store_env


@pytest.fixture
def prefix(app: Flask, redis_prefix: str) -> str:
    app.extensions.pop("gw_sign_in_throttle", None)  # made again with this test's settings and prefix
    return redis_prefix


@pytest.fixture
def second_process(app: Flask, database_url: str, tmp_path: Path, app_env: dict[str, str], prefix: str) -> Flask:
    """Another gateway process on the same database (and Redis): its memory shares nothing with the first."""
    other = _build_app(database_url, tmp_path, ENV={
        "DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key-0123456789-abcdefghijkl",
        "TOKEN_ENCRYPTION_KEYS": TEST_FERNET_KEY, **app_env})
    other.config["REDIS_PREFIX"] = prefix
    from tests.conftest import FreshGlobalsClient

    other.test_client_class = FreshGlobalsClient
    return other


def _attempt(client: FlaskClient, token: str, email: str, password: str):  # type: ignore[no-untyped-def]
    """One sign-in from an address never seen before (the per-IP limit never applies)."""
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": next(_addresses)})


def test_guesses_spread_over_many_addresses_and_processes_meet_a_per_account_back_off(  # type: ignore[no-untyped-def]
        client: FlaskClient, second_process: Flask, plain_user: User, prefix: str) -> None:
    other = second_process.test_client()
    tokens = {id(client): csrf_token(client, "/login"), id(other): csrf_token(other, "/login")}
    for number in range(FREE_FAILURES + 1):  # the last one locks the account for a second
        browser = client if number % 2 else other  # the two processes take turns
        response = _attempt(browser, tokens[id(browser)], USER_EMAIL, f"guess-{number}")
        assert response.status_code == 200 and "Invalid email or password." in response.get_data(as_text=True)
    for browser in (client, other):  # even the right password waits now, on every process
        refused = _attempt(browser, tokens[id(browser)], USER_EMAIL, USER_PASSWORD)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "Too many failed sign-ins for this account" in refused.get_data(as_text=True)
    time.sleep(1.1)
    assert _attempt(client, tokens[id(client)], USER_EMAIL, USER_PASSWORD).status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    token = csrf_token(client, "/login")
    assert _attempt(client, token, USER_EMAIL, "wrong-again").status_code == 200  # a success started afresh


def test_unknown_accounts_are_throttled_the_same_way(client: FlaskClient, prefix: str) -> None:  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/login")
    statuses = [_attempt(client, token, "nobody@example.com", f"guess-{n}").status_code
                for n in range(FREE_FAILURES + 2)]
    assert statuses == [200] * (FREE_FAILURES + 1) + [429]


def test_the_back_off_doubles() -> None:
    from sso.throttle import MAX_DELAY, delay_after

    delays = [delay_after(n) for n in range(1, FREE_FAILURES + 6)]
    assert delays == [0.0] * FREE_FAILURES + [1.0, 2.0, 4.0, 8.0, 16.0]
    assert delay_after(FREE_FAILURES + 40) == MAX_DELAY


def test_an_unknown_account_costs_as_much_as_a_known_one(client: FlaskClient, prefix: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """main answered an unknown e-mail about 10 times sooner (no password hash checked): a timing oracle.

    Counted, not timed (a timed test fails under load): every attempt checks exactly one password hash made with
    the same method and cost, whether the account exists, has no password, or does not exist."""
    from sso import throttle as throttle_module

    for n in range(2):
        make_user(f"known{n}@example.com", "the-real-password", "User")
        make_user(f"sso-only{n}@example.com", None, "User")
    token = csrf_token(client, "/login")
    real_check = throttle_module.check_password_hash
    checked: list[str] = []

    def counting_check(password_hash: str, password: str) -> bool:
        checked.append(password_hash.split("$", 1)[0])  # method and cost, e.g. "scrypt:32768:8:1"
        return real_check(password_hash, password)

    monkeypatch.setattr(throttle_module, "check_password_hash", counting_check)
    methods = {}
    for email in ("known0@example.com", "unknown0@example.com", "sso-only0@example.com",
                  "known1@example.com", "unknown1@example.com", "sso-only1@example.com"):
        checked.clear()
        assert _attempt(client, token, email, "a-wrong-password").status_code == 200
        assert len(checked) == 1, (email, checked)
        methods[email] = checked[0]
    assert len(set(methods.values())) == 1, methods
