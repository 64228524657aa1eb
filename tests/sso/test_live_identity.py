"""Sessions kept in step with the directory (issue 15, point 3), on both session stores: a group change is
written into the stored session and the next /auth/verify — the fast path's cached answer included — shows it; a
request that read the session before the change and writes it after does not undo it; a touch never writes back
old data; a revoked sign-in ends only the sessions that began before it."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.models import User
from sso.live_identity import DirectoryFacts, apply_directory
from sso.sessions import ServerSession, adopt_refreshed_identity, hash_token
from tests.conftest import USER_EMAIL, USER_PASSWORD, sign_in
from tests.sso_helpers import stored_identity

TENANT = "8f6b0c52-0000-4000-8000-0000000000aa"
READERS = "0b4f5a3e-0000-4000-8000-00000000f1a0"
FINANCE = "11111111-2222-3333-4444-555555555555"
URL = {"X-Original-URL": "https://app.example.com/reports", "X-Original-Method": "GET"}


@pytest.fixture
def app_env(store_env: dict[str, str]) -> dict[str, str]:
    return store_env


def _signed_in(client: FlaskClient, groups: list[str]) -> str:
    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    with client.session_transaction() as session:
        session["identity"] = {**session["identity"], "tid": TENANT, "groups": groups}
    return hash_token(client.get_cookie("gw_session").value)


def _facts(member_of: set[str], **changes: object) -> DirectoryFacts:
    values = {"tenant_id": TENANT, "email": USER_EMAIL, "enabled": True, "sessions_valid_from": None,
              "followed_groups": frozenset({READERS, FINANCE}), "member_of": frozenset(member_of), **changes}
    return DirectoryFacts(**values)  # type: ignore[arg-type]


def test_a_group_change_reaches_the_next_verify_fast_path_included(
        app: Flask, client: FlaskClient, plain_user: User, sessions: object) -> None:
    _signed_in(client, ["unfollowed-group", READERS])
    for _ in range(2):  # signed by the view, then served from the cache by the fast path
        assert client.get("/auth/verify", headers=URL).headers["X-Auth-Request-Groups"] == \
            f"unfollowed-group,{READERS}"
    applied = apply_directory({plain_user.id: _facts({FINANCE})})
    assert (applied.ended, applied.refreshed) == (0, 1)
    identity = stored_identity(client)
    assert identity["groups"] == ["unfollowed-group", FINANCE] and identity["rev"] == 1
    for _ in range(2):
        assert client.get("/auth/verify", headers=URL).headers["X-Auth-Request-Groups"] == \
            f"unfollowed-group,{FINANCE}"
    assert apply_directory({plain_user.id: _facts({FINANCE})}).refreshed == 0  # nothing new: nothing written


def test_a_request_that_read_the_session_before_the_change_does_not_undo_it(
        app: Flask, client: FlaskClient, plain_user: User, sessions: object) -> None:
    id_hash = _signed_in(client, [READERS])
    record = sessions.get(id_hash)  # type: ignore[attr-defined]
    request_copy = ServerSession(record.data, token="t", record=record)  # what a request read ...
    apply_directory({plain_user.id: _facts(set())})  # ... before live access removed the group
    request_copy["flash"] = "something"  # the request changes its session and writes it back
    adopt_refreshed_identity(sessions, request_copy, record)
    assert request_copy["identity"]["groups"] == [] and request_copy["identity"]["rev"] == 1
    signed_in_again = ServerSession({**record.data, "identity": {**record.data["identity"],
                                                                 "signed_in_at": time.time() + 5}})
    adopt_refreshed_identity(sessions, signed_in_again, record)  # a new sign-in's identity is kept
    assert signed_in_again["identity"]["groups"] == [READERS]
    # A touch writes last_seen only, never the data the request read.
    record.last_seen_at = time.time()
    sessions.touch(record)  # type: ignore[attr-defined]
    assert sessions.get(id_hash).data["identity"]["groups"] == []  # type: ignore[attr-defined]


def test_a_revocation_ends_only_sessions_that_began_before_it(
        app: Flask, client: FlaskClient, plain_user: User, sessions: object) -> None:
    id_hash = _signed_in(client, [READERS])
    started = stored_identity(client)["signed_in_at"]
    applied = apply_directory({plain_user.id: _facts({READERS}, sessions_valid_from=float(int(started)) - 5)})
    assert applied.ended == 0 and sessions.get(id_hash) is not None  # type: ignore[attr-defined]
    applied = apply_directory({plain_user.id: _facts({READERS}, sessions_valid_from=float(int(started)))})
    assert applied.ended == 1 and sessions.get(id_hash) is None  # type: ignore[attr-defined]
    assert client.get("/auth/verify", headers=URL).status_code == 401


def test_another_tenants_session_is_left_alone_and_a_disable_ends_every_session(
        app: Flask, client: FlaskClient, plain_user: User, sessions: object) -> None:
    id_hash = _signed_in(client, [READERS])
    other = _facts(set(), tenant_id="another-tenant")
    assert apply_directory({plain_user.id: other}).refreshed == 0
    assert stored_identity(client)["groups"] == [READERS]
    second = app.test_client()
    assert sign_in(second, USER_EMAIL, USER_PASSWORD).status_code == 302
    assert apply_directory({plain_user.id: _facts({READERS}, enabled=False)}).ended == 2
    assert sessions.get(id_hash) is None  # type: ignore[attr-defined]
