"""Issue 10, point 1: a user the import disables or removes (Core statements, no ORM hook) is signed out at once
everywhere: their sessions end in the store in use (database table or Redis) and /auth/verify refuses them."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import Datasource, User
from emulator.server import EmulatorHandle
from jobs.models import TaskRun
from tests.conftest import sign_in
from tests.imports.helpers import authorized_datasource, control, imported_users, run_import, save_import_settings
from tests.o365_helpers import emulator_env

DISABLED = "adele.vance@contoso.example"
REMOVED = "megan.bowen@contoso.example"
KEPT = "alex.wilber@contoso.example"
PASSWORD = "a-local-password-too"


@pytest.fixture
def app_env(emulator: EmulatorHandle, store_env: dict[str, str]) -> dict[str, str]:
    return {**emulator_env(emulator), **store_env}


@pytest.fixture
def admin_client(client: FlaskClient, admin_user, sessions) -> FlaskClient:  # type: ignore[no-untyped-def]
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

    assert sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 302  # in the store under test
    return client


@pytest.fixture
def datasource(app: Flask, admin_client: FlaskClient, emulator: EmulatorHandle) -> Datasource:
    app.config["IMPORT_PAGE_SIZE"] = 10
    return authorized_datasource(admin_client, emulator)


def _signed_in(app: Flask, user: User) -> FlaskClient:
    """A browser of an imported user, signed in (with a local password: the session is the same as SSO's)."""
    user.set_password(PASSWORD)
    db.session.commit()
    browser = app.test_client()
    assert sign_in(browser, user.email, PASSWORD).status_code == 302
    assert browser.get("/auth/verify").status_code == 200
    assert browser.get("/auth/verify").status_code == 200  # the fast path, with the cached assertion
    return browser


def test_users_disabled_or_removed_by_the_import_lose_their_sessions_at_once(  # type: ignore[no-untyped-def]
        app: Flask, datasource: Datasource, emulator: EmulatorHandle, admin_client: FlaskClient,
        sessions) -> None:
    save_import_settings(admin_client, datasource, on_missing="remove", removal_guard_percent="50")
    assert run_import(datasource).status == TaskRun.SUCCEEDED
    by_email = {u.email: u for u in imported_users(datasource).values()}
    disabled, removed, kept = by_email[DISABLED], by_email[REMOVED], by_email[KEPT]
    ids = {DISABLED: disabled.id, REMOVED: removed.id, KEPT: kept.id}
    browsers = {email: _signed_in(app, user) for email, user in ((DISABLED, disabled), (REMOVED, removed),
                                                                 (KEPT, kept))}
    control(emulator, "PATCH", f"users/{disabled.object_id}", {"accountEnabled": False})
    control(emulator, "DELETE", f"users/{removed.object_id}")

    run = run_import(datasource)
    assert run.status == TaskRun.SUCCEEDED, run.error
    assert (run.updated, run.removed) == (1, 1)
    for email in (DISABLED, REMOVED):
        assert sessions.for_user(ids[email]) == [], email
        assert browsers[email].get("/auth/verify").status_code == 401, email
    assert len(sessions.for_user(ids[KEPT])) == 1 and browsers[KEPT].get("/auth/verify").status_code == 200


def test_users_gone_from_the_source_with_the_disable_policy_lose_their_sessions(  # type: ignore[no-untyped-def]
        app: Flask, datasource: Datasource, emulator: EmulatorHandle, admin_client: FlaskClient,
        sessions) -> None:
    save_import_settings(admin_client, datasource, on_missing="disable", removal_guard_percent="50")
    assert run_import(datasource).status == TaskRun.SUCCEEDED
    gone = next(u for u in imported_users(datasource).values() if u.email == REMOVED)
    gone_id = gone.id
    browser = _signed_in(app, gone)
    control(emulator, "DELETE", f"users/{gone.object_id}")
    run = run_import(datasource)
    assert run.status == TaskRun.SUCCEEDED and run.disabled == 1, run.error
    assert sessions.for_user(gone_id) == [] and browser.get("/auth/verify").status_code == 401
