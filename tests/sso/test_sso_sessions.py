"""Server-side sessions (issue 5, point 6), on the database store and on Redis (`store_backend` runs each test on
both): opaque small cookie, garbage cookies, renewal, idle and absolute timeouts, My sessions, admin revoke and
"sign out everywhere", disabling a user ends their sessions on the next request."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import User
from sso.sessions import RedisStore, hash_token, touch_interval
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, USER_EMAIL, USER_PASSWORD, csrf_token, sign_in


@pytest.fixture
def app_env(store_env: dict[str, str]) -> dict[str, str]:
    return store_env


def _cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie("gw_session")
    return cookie.value if cookie else None


def test_sign_in_issues_a_new_opaque_id_and_keeps_data_server_side(client: FlaskClient, plain_user: User,  # type: ignore[no-untyped-def]
                                                                   sessions) -> None:
    client.get("/login")  # the CSRF token travels in a signed cookie: nothing stored server-side
    before = _cookie(client)
    assert before and len(before) != 43
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    after = _cookie(client)
    assert after and after != before and len(after) == 43
    records = sessions.for_user(plain_user.id)
    assert len(records) == 1 and records[0].data["_user_id"] == str(plain_user.id)
    assert client.get("/").status_code == 200


def test_garbage_and_oversized_cookies_give_a_fresh_session_not_a_500(client: FlaskClient, plain_user: User,  # type: ignore[no-untyped-def]
                                                                      sessions) -> None:
    for value in ("garbage", "x" * 5000, "A" * 43, "../../etc/passwd", "%00%ff", "a" * 42 + "!"):
        client.set_cookie("gw_session", value)
        response = client.get("/login")
        assert response.status_code == 200, value
        assert client.get("/").status_code == 302
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    assert client.get("/").status_code == 200


def test_idle_timeout(client: FlaskClient, plain_user: User, sessions) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    record = sessions.for_user(plain_user.id)[0]
    record.last_seen_at = time.time() - record.idle_seconds - touch_interval(record.idle_seconds) - 1
    sessions.save(record)
    assert client.get("/").status_code == 302
    assert sessions.for_user(plain_user.id) == []


def test_absolute_timeout_even_when_active(client: FlaskClient, plain_user: User, sessions) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    record = sessions.for_user(plain_user.id)[0]
    record.created_at = time.time() - 13 * 3600
    record.expires_at = time.time() - 1
    record.last_seen_at = time.time()
    if isinstance(sessions, RedisStore):  # the key's TTL would drop it anyway; check the explicit test too
        record.expires_at = time.time() + 0.5
        sessions.save(record)
        time.sleep(0.6)
    else:
        sessions.save(record)
    assert client.get("/").status_code == 302


def test_timeouts_come_from_the_settings(client: FlaskClient, plain_user: User, sessions) -> None:  # type: ignore[no-untyped-def]
    from tests.sso_helpers import enable_sso

    enable_sso(idle_timeout_minutes=5, absolute_timeout_hours=2)
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    record = sessions.for_user(plain_user.id)[0]
    assert record.idle_seconds == 300 and 7190 < record.expires_at - record.created_at <= 7200


def test_my_sessions_lists_them_and_signs_out_one(app: Flask, client: FlaskClient, plain_user: User,  # type: ignore[no-untyped-def]
                                                  sessions) -> None:
    other = app.test_client()
    sign_in(other, USER_EMAIL, USER_PASSWORD)
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    page = client.get("/sessions").get_data(as_text=True)
    records = sessions.for_user(plain_user.id)
    assert len(records) == 2 and all(r.public_id in page for r in records) and "this session" in page
    current = client.get_cookie("gw_session").value
    from sso.sessions import hash_token

    other_record = next(r for r in records if r.id_hash != hash_token(current))
    response = client.post(f"/sessions/{other_record.public_id}/end", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 302
    assert other.get("/").status_code == 302 and client.get("/").status_code == 200
    assert client.post("/sessions/unknown/end", data={"csrf_token": csrf_token(client, "/")}).status_code == 404


def test_admin_revokes_one_session_and_signs_a_user_out_everywhere(app: Flask, client: FlaskClient,  # type: ignore[no-untyped-def]
                                                                   plain_user: User, admin_user: User,
                                                                   sessions) -> None:
    first, second = app.test_client(), app.test_client()
    sign_in(first, USER_EMAIL, USER_PASSWORD)
    sign_in(second, USER_EMAIL, USER_PASSWORD)
    sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    lookup = client.get(f"/admin/sso/sessions?user={USER_EMAIL}")
    assert lookup.headers["Location"] == f"/admin/sso/users/{plain_user.id}/sessions"
    page = client.get(lookup.headers["Location"]).get_data(as_text=True)
    records = sessions.for_user(plain_user.id)
    assert all(r.public_id in page for r in records)
    token = csrf_token(client, "/admin/sso")
    client.post(f"/admin/sso/users/{plain_user.id}/sessions/{records[0].public_id}/end", data={"csrf_token": token})
    assert len(sessions.for_user(plain_user.id)) == 1
    client.post(f"/admin/sso/users/{plain_user.id}/sessions/end-all", data={"csrf_token": token})
    assert first.get("/").status_code == 302 and second.get("/").status_code == 302
    assert client.get("/").status_code == 200  # the admin's own session is untouched


def test_disabling_a_user_ends_all_their_sessions_at_once(app: Flask, client: FlaskClient, plain_user: User,  # type: ignore[no-untyped-def]
                                                          sessions) -> None:
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    other = app.test_client()
    sign_in(other, USER_EMAIL, USER_PASSWORD)
    assert len(sessions.for_user(plain_user.id)) == 2
    plain_user.active = False
    db.session.commit()
    assert sessions.for_user(plain_user.id) == []
    assert client.get("/").status_code == 302 and other.get("/auth/verify").status_code == 401


def test_sign_out_deletes_the_server_side_session(client: FlaskClient, plain_user: User, sessions) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    old = client.get_cookie("gw_session").value
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert sessions.for_user(plain_user.id) == []
    client.set_cookie("gw_session", old)  # a copied cookie is worthless afterwards
    assert client.get("/").status_code == 302


def test_deleting_a_user_ends_their_sessions(app: Flask, client: FlaskClient, plain_user: User,  # type: ignore[no-untyped-def]
                                             sessions) -> None:
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    assert client.get("/auth/verify").status_code == 200
    assert client.get("/auth/verify").status_code == 200  # the fast path, with the cached assertion
    db.session.delete(plain_user)
    db.session.commit()
    assert client.get("/auth/verify").status_code == 401 and client.get("/").status_code == 302


# -- issue 10, point 16: the idle timeout is never shorter than configured --------------------------------------

def test_an_idle_timeout_is_never_shorter_than_configured(client: FlaskClient, plain_user: User,  # type: ignore[no-untyped-def]
                                                          sessions) -> None:
    """Active 59 s after the last write of `last_seen`, then idle for just under the idle timeout: still signed in
    (main wrote `last_seen` once a minute and counted the idle time from that write, up to 60 s early)."""
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    record = sessions.for_user(plain_user.id)[0]
    assert record.idle_seconds == 3600
    record.last_seen_at = time.time() - 59  # the last write was 59 s ago ...
    sessions.save(record)
    assert client.get("/auth/verify").status_code == 200  # ... and the user is active now (nothing to save)
    record = sessions.for_user(plain_user.id)[0]
    record.last_seen_at -= record.idle_seconds - 2  # now idle for (idle timeout - 2 s) since that request
    sessions.save(record)
    assert client.get("/auth/verify").status_code == 200


def test_a_short_idle_timeout_is_touched_often_enough(client: FlaskClient, plain_user: User,  # type: ignore[no-untyped-def]
                                                      sessions) -> None:
    from tests.sso_helpers import enable_sso

    enable_sso(idle_timeout_minutes=1)
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    record = sessions.for_user(plain_user.id)[0]
    assert record.idle_seconds == 60 and touch_interval(60) == 1.0
    record.last_seen_at = time.time() - 10
    sessions.save(record)
    assert client.get("/auth/verify").status_code == 200  # forward auth keeps a session alive too
    assert time.time() - sessions.for_user(plain_user.id)[0].last_seen_at < 5
    record = sessions.for_user(plain_user.id)[0]
    record.last_seen_at = time.time() - 60 - touch_interval(60) - 0.5  # past the idle timeout and its slack
    sessions.save(record)
    assert client.get("/auth/verify").status_code == 401


# -- issue 10, point 1: a disabled or removed user's sessions end whatever wrote the change ----------------------

@pytest.mark.parametrize("store_backend", ["database"])
def test_forward_auth_refuses_a_user_disabled_behind_the_orms_back(client: FlaskClient, plain_user: User,  # type: ignore[no-untyped-def]
                                                                   sessions) -> None:
    """The database store reads the user's `active` flag with the session (one query): a disable by any Core
    statement is refused at once, on the fast path and in the view."""
    from sqlalchemy import update

    sign_in(client, USER_EMAIL, USER_PASSWORD)
    assert client.get("/auth/verify").status_code == 200
    assert client.get("/auth/verify").status_code == 200  # the fast path, with the cached assertion
    db.session.execute(update(User.__table__).where(User.__table__.c.id == plain_user.id).values(active=False))
    db.session.commit()
    assert client.get("/auth/verify").status_code == 401
    assert sessions.for_user(plain_user.id) == []


def test_a_sign_in_racing_with_a_disable_keeps_no_session(app: Flask, client: FlaskClient, plain_user: User,  # type: ignore[no-untyped-def]
                                                          sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    """The import disables the user (Core statement, then ends their sessions) after the sign-in checked them
    and before the sign-in's session is stored: the stored session is dropped."""
    import flask_login
    from sqlalchemy import update

    from sso import local_signin
    from sso.sessions import end_user_sessions

    def login_then_disabled(user, *args, **kwargs):  # type: ignore[no-untyped-def]
        done = flask_login.login_user(user, *args, **kwargs)
        with db.engine.begin() as connection:
            connection.execute(update(User.__table__).where(User.__table__.c.id == user.id).values(active=False))
        end_user_sessions([user.id])
        return done

    monkeypatch.setattr(local_signin, "login_user", login_then_disabled)
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    assert sessions.for_user(plain_user.id) == []
    assert client.get("/auth/verify").status_code == 401


# -- issue 10, point 10: setting a password ends the user's sessions (audited) ----------------------------------

def _edit_password(client: FlaskClient, user: User, password: str, roles: list[str]):  # type: ignore[no-untyped-def]
    token = csrf_token(client, f"/admin/users/{user.id}")
    return client.post(f"/admin/users/{user.id}", data={
        "csrf_token": token, "email": user.email, "display_name": user.display_name, "roles": roles,
        "active": "y", "password": password})


def test_an_administrator_setting_a_password_ends_that_users_sessions(app: Flask, client: FlaskClient,  # type: ignore[no-untyped-def]
                                                                       plain_user: User, admin_user: User,
                                                                       sessions) -> None:
    from core.models import AuditEvent

    victim = app.test_client()
    sign_in(victim, USER_EMAIL, USER_PASSWORD)
    assert victim.get("/auth/verify").status_code == 200 and victim.get("/auth/verify").status_code == 200
    sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert _edit_password(client, plain_user, "a-brand-new-password", ["User"]).status_code == 302
    assert sessions.for_user(plain_user.id) == []
    assert victim.get("/auth/verify").status_code == 401 and victim.get("/").status_code == 302
    assert client.get("/").status_code == 200  # the administrator's own session is untouched
    db.session.expire_all()
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="user.sessions_end")).one()
    assert event.target == USER_EMAIL and event.actor == ADMIN_EMAIL
    assert event.detail == {"reason": "password changed", "current_session_kept": False}
    update = db.session.scalars(db.select(AuditEvent).filter_by(action="user.update")).one()
    assert update.detail["credentials_changed"] is True  # said plainly (a key naming the password is redacted)


def test_changing_your_own_password_keeps_this_session_under_a_new_id_and_ends_the_others(  # type: ignore[no-untyped-def]
        app: Flask, client: FlaskClient, admin_user: User, sessions) -> None:
    elsewhere = app.test_client()
    sign_in(elsewhere, ADMIN_EMAIL, ADMIN_PASSWORD)
    sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    before = _cookie(client)
    (mine,) = [r for r in sessions.for_user(admin_user.id) if r.id_hash == hash_token(before)]
    assert _edit_password(client, admin_user, "another-long-password", ["Administrator"]).status_code == 302
    after = _cookie(client)
    assert after and after != before
    (kept,) = sessions.for_user(admin_user.id)
    assert kept.id_hash == hash_token(after) and kept.public_id == mine.public_id
    assert client.get("/").status_code == 200 and elsewhere.get("/").status_code == 302
    client.set_cookie("gw_session", before)  # the id it had before the change is worthless
    assert client.get("/").status_code == 302


def test_the_create_admin_command_setting_a_password_ends_the_sessions(app: Flask, client: FlaskClient,  # type: ignore[no-untyped-def]
                                                                        admin_user: User, sessions) -> None:
    sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert client.get("/auth/verify").status_code == 200
    result = app.test_cli_runner().invoke(args=["users", "create-admin", ADMIN_EMAIL, "--password-stdin"],
                                          input="reset-by-the-operator\n")
    assert result.exit_code == 0, result.output
    assert sessions.for_user(admin_user.id) == [] and client.get("/auth/verify").status_code == 401


# -- issue 10, point 15: an anonymous visit stores nothing server-side -----------------------------------------

def _stored_sessions(sessions) -> int:  # type: ignore[no-untyped-def]
    if isinstance(sessions, RedisStore):
        return sum(1 for _ in sessions.redis.scan_iter(f"{sessions.prefix}s:*"))
    from sso.models import UserSession

    db.session.expire_all()
    return db.session.scalar(db.select(db.func.count()).select_from(UserSession)) or 0


def test_anonymous_visits_store_nothing_server_side_and_csrf_still_holds(app: Flask, client: FlaskClient,  # type: ignore[no-untyped-def]
                                                                          plain_user: User, sessions) -> None:
    for _ in range(5):
        visitor = app.test_client()
        assert visitor.get("/login").status_code == 200 and _cookie(visitor)
        assert visitor.get("/auth/verify").status_code == 401
    assert _stored_sessions(sessions) == 0
    forger = app.test_client()
    forger.get("/login")
    refused = forger.post("/login", data={"email": USER_EMAIL, "password": USER_PASSWORD, "csrf_token": "forged"})
    assert refused.status_code == 400 and forger.get("/").status_code == 302
    visitor = app.test_client()
    visitor.set_cookie("gw_session", _cookie(forger)[:-2] + "xx")  # a tampered anonymous cookie: a fresh one
    assert visitor.get("/login").status_code == 200 and _stored_sessions(sessions) == 0
    assert sign_in(visitor, USER_EMAIL, USER_PASSWORD).status_code == 302  # CSRF from the signed cookie
    assert _stored_sessions(sessions) == 1 and len(_cookie(visitor)) == 43
    assert visitor.get("/").status_code == 200


def test_signing_out_keeps_nothing_server_side_and_still_shows_the_message(client: FlaskClient,  # type: ignore[no-untyped-def]
                                                                         plain_user: User, sessions) -> None:
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    assert _stored_sessions(sessions) == 1
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")}, follow_redirects=True)
    assert "You have been signed out." in response.get_data(as_text=True)
    assert _stored_sessions(sessions) == 0


@pytest.mark.parametrize("store_backend", ["database"])
def test_rows_without_a_user_are_pruned(client: FlaskClient, plain_user: User, sessions,  # type: ignore[no-untyped-def]
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from sso.sessions import SessionRecord

    monkeypatch.setattr("sso.sessions.prune_now", lambda: False)  # the sign-in's own 1-in-200 prune would race

    now = time.time()
    sessions.save(SessionRecord(id_hash="a" * 64, public_id="anon", data={"csrf_token": "x"}, created_at=now,
                                last_seen_at=now, expires_at=now + 3600, idle_seconds=3600))
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    assert _stored_sessions(sessions) == 2
    sessions.prune()
    assert _stored_sessions(sessions) == 1 and sessions.for_user(plain_user.id)


def test_access_rules_on_the_fast_path_follow_each_policy_version(app: Flask, client: FlaskClient,  # type: ignore[no-untyped-def]
                                                                  plain_user: User, sessions) -> None:
    """The fast path (one session read on either store) decides with the rules of the current version: an allow
    cached under one version or rule is never served after a change."""
    from policies import service

    url = {"X-Original-URL": "https://app.example.com/reports/q3", "X-Original-Method": "GET"}
    number = service.save({"rules": [{"id": "r-1", "name": "Reports", "paths": ["/reports/"],
                                      "criteria": {"domains": ["example.com"]}}]}, actor="admin@example.com")
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    assert client.get("/auth/verify", headers=url).status_code == 200
    fast = client.get("/auth/verify", headers=url)
    assert fast.status_code == 200 and "Content-Security-Policy" not in fast.headers
    service.save({"rules": [{"id": "r-1", "name": "Reports", "paths": ["/reports/"],
                             "criteria": {"domains": ["contoso.example"]}}]}, actor="admin@example.com")
    refused = client.get("/auth/verify", headers=url)
    assert refused.status_code == 403 and refused.get_json()["error"]["rule"] == "Reports"
    assert service.current()[0] == number + 1
