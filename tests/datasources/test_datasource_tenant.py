"""A datasource's Office 365 tenant is fixed at its first authorization (issue 10, point 2).

Re-Authorize with another tenant's administrator is refused, audited as refused, and changes nothing, so that
tenant's people cannot sign in through the datasource's single sign-on. Two tenants in the emulator: Contoso and
Fabrikam, the gateway's app consented in each by its own administrator (a multi-tenant app, as in Entra ID).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import AuditEvent, Datasource
from emulator.server import EmulatorHandle, start_in_thread
from sso.models import SsoProvider
from sso.sessions import DatabaseStore, RedisStore, store
from tests.conftest import REDIS_TEST_URL, csrf_token, make_user, sign_in
from tests.o365_helpers import callback_path, emulator_env, sign_in_at_microsoft
from tests.sso_helpers import SSO_PATHS, add_office365_provider, enable_sso, microsoft_sign_in, start_sign_in

CONTOSO_ADMIN = "admin@contoso.example"
FABRIKAM_ADMIN = "admin@fabrikam.example"
FABRIKAM_USER = "adele.vance@fabrikam.example"
CONTOSO_USER = "adele.vance@contoso.example"


@pytest.fixture
def two_tenants(tmp_path: Path) -> Iterator[EmulatorHandle]:
    handle = start_in_thread(tmp_path / "emulator", tenants=2, redirect_uris=[
        f"http://{host}{path}" for host in ("localhost", "127.0.0.1") for path in SSO_PATHS])
    yield handle
    handle.stop()


@pytest.fixture
def session_backend() -> str:
    """The session store: the database table unless a test is parametrized over both."""
    return "database"


@pytest.fixture
def app_env(two_tenants: EmulatorHandle, session_backend: str) -> dict[str, str]:
    return {**emulator_env(two_tenants), **({"REDIS_URL": REDIS_TEST_URL} if session_backend == "redis" else {})}


@pytest.fixture
def sessions(app: Flask, session_backend: str) -> Iterator[DatabaseStore | RedisStore]:
    """The session store under test, on a Redis prefix of its own (ask for it before any client signs in)."""
    prefix = f"gwtest-{uuid.uuid4().hex[:10]}"
    app.config["REDIS_PREFIX"] = prefix
    app.extensions.pop("gw_session_store", None)
    found = store()
    assert isinstance(found, RedisStore if session_backend == "redis" else DatabaseStore)
    yield found
    if isinstance(found, RedisStore):
        keys = list(found.redis.scan_iter(f"{prefix}:*"))
        if keys:
            found.redis.delete(*keys)


def _fabrikam_id(emulator: EmulatorHandle) -> str:
    return next(t["id"] for t in emulator.config["tenants"] if t["domain"] == "fabrikam.example")


def _datasource() -> Datasource:
    db.session.expire_all()
    return db.session.scalars(db.select(Datasource)).one()


def _authorize(client: FlaskClient, emulator: EmulatorHandle, username: str, action: str = "authorize") -> str:
    datasource = _datasource()
    token = csrf_token(client, f"/admin/datasources/{datasource.id}")
    started = client.post(f"/admin/datasources/{datasource.id}/{action}", data={"csrf_token": token})
    assert started.status_code == 302, started.get_data(as_text=True)[:500]
    page = client.get(callback_path(sign_in_at_microsoft(emulator, started.headers["Location"], username)))
    assert page.status_code == 200
    return page.get_data(as_text=True)


@pytest.fixture
def contoso_sso(admin_client: FlaskClient, two_tenants: EmulatorHandle) -> Datasource:
    """A ready SSO datasource on Contoso with its provider, sign-in through it on."""
    token = csrf_token(admin_client, "/admin/datasources/new/office365")
    admin_client.post("/admin/datasources/new/office365", data={"csrf_token": token, "name": "Contoso 365",
                                                                  "sso_enabled": "y"})
    assert "Connection test succeeded" in _authorize(admin_client, two_tenants, CONTOSO_ADMIN)
    enable_sso(create_users=True)
    add_office365_provider(_datasource())
    return _datasource()


def test_reauthorize_with_another_tenant_is_refused_and_changes_nothing(app: Flask, contoso_sso: Datasource,
                                                                         two_tenants: EmulatorHandle) -> None:
    before = {name: getattr(contoso_sso, name) for name in ("tenant_id", "tenant_name", "token_cache",
                                                            "authorized_by", "authorized_at", "status")}
    assert before["tenant_id"] == two_tenants.tenant_id
    make_user("ds@example.com", "datasource-pass", "Manage datasources")
    manager = app.test_client()
    sign_in(manager, "ds@example.com", "datasource-pass")
    page = _authorize(manager, two_tenants, FABRIKAM_ADMIN)
    assert "Authorization failed" in page and "Connection test succeeded" not in page
    assert (f"{FABRIKAM_ADMIN} belongs to another Office 365 tenant ({_fabrikam_id(two_tenants)}). This data "
            f"source is connected to Contoso ({two_tenants.tenant_id})") in page
    assert "Nothing was changed" in page
    after = _datasource()
    assert {name: getattr(after, name) for name in before} == before
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.reauthorize")).one()
    assert event.outcome == "refused" and event.actor == "ds@example.com"
    assert event.detail["tenant_id"] == two_tenants.tenant_id
    assert event.detail["refused_tenant_id"] == _fabrikam_id(two_tenants)
    # Fabrikam's people still cannot sign in through this datasource; Contoso's still can.
    at_microsoft = sign_in_at_microsoft(two_tenants, start_sign_in(app.test_client(), "contoso"), FABRIKAM_USER,
                                        org_consent=False)
    assert at_microsoft.status_code == 200 and "AADSTS50034" in at_microsoft.text  # not in Contoso's directory
    contoso = microsoft_sign_in(app.test_client(), two_tenants, "contoso", CONTOSO_USER)
    assert contoso.status_code == 302 and contoso.headers["Location"] == "/"


def test_reauthorize_with_the_same_tenant_still_works(admin_client: FlaskClient, contoso_sso: Datasource,
                                                      two_tenants: EmulatorHandle) -> None:
    assert "Connection test succeeded" in _authorize(admin_client, two_tenants, CONTOSO_ADMIN)
    assert _datasource().tenant_id == two_tenants.tenant_id
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.reauthorize")).one()
    assert event.outcome == "success"
    assert db.session.scalars(db.select(SsoProvider)).one().enabled


def test_only_an_administrator_changes_the_tenant_and_sso_waits_for_confirmation(
        app: Flask, admin_client: FlaskClient, contoso_sso: Datasource, two_tenants: EmulatorHandle) -> None:
    fabrikam = _fabrikam_id(two_tenants)
    make_user("ds@example.com", "datasource-pass", "Manage datasources")
    manager = app.test_client()
    sign_in(manager, "ds@example.com", "datasource-pass")
    assert 'id="change-tenant"' not in manager.get(f"/admin/datasources/{contoso_sso.id}").get_data(as_text=True)
    token = csrf_token(manager, f"/admin/datasources/{contoso_sso.id}")
    for action in ("change-tenant", "confirm-tenant"):
        assert manager.post(f"/admin/datasources/{contoso_sso.id}/{action}",
                            data={"csrf_token": token}).status_code == 403

    page = _authorize(admin_client, two_tenants, FABRIKAM_ADMIN, action="change-tenant")
    assert "Connection test succeeded. Tenant changed from Contoso to Fabrikam." in page
    assert "Single sign-on through this data source is off until an Administrator confirms" in page
    changed = _datasource()
    assert (changed.tenant_id, changed.tenant_name, changed.authorized_by) == (fabrikam, "Fabrikam", FABRIKAM_ADMIN)
    provider = db.session.scalars(db.select(SsoProvider)).one()
    assert provider.enabled is False
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.change_tenant")).one()
    assert event.outcome == "success" and event.actor == "admin@example.com"
    assert (event.detail["from_tenant_id"], event.detail["tenant_id"]) == (two_tenants.tenant_id, fabrikam)
    assert event.detail["sso_providers_disabled"] == [provider.name]
    assert app.test_client().get(f"/sso/login/{provider.name}").status_code != 302  # nobody signs in meanwhile
    details = admin_client.get(f"/admin/datasources/{changed.id}").get_data(as_text=True)
    assert 'id="sso-confirm"' in details and "Confirm tenant for single sign-on" in details

    token = csrf_token(admin_client, f"/admin/datasources/{changed.id}")
    confirmed = admin_client.post(f"/admin/datasources/{changed.id}/confirm-tenant", data={"csrf_token": token},
                                  follow_redirects=True).get_data(as_text=True)
    assert "Single sign-on through Contoso 365 is on again: people of Fabrikam can sign in." in confirmed
    db.session.expire_all()
    assert db.session.scalars(db.select(SsoProvider)).one().enabled is True
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.confirm_tenant")).one()
    assert event.detail["tenant_id"] == fabrikam and event.detail["sso_providers_enabled"] == [provider.name]
    signed_in = microsoft_sign_in(app.test_client(), two_tenants, provider.name, FABRIKAM_USER)
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/"


@pytest.mark.parametrize("session_backend", ["database", "redis"])
def test_changing_the_tenant_ends_the_sessions_signed_in_from_the_old_tenant(
        app: Flask, sessions: DatabaseStore | RedisStore, admin_client: FlaskClient, contoso_sso: Datasource,
        two_tenants: EmulatorHandle) -> None:
    contoso = app.test_client()
    assert microsoft_sign_in(contoso, two_tenants, "contoso", CONTOSO_USER).status_code == 302
    other = app.test_client()
    assert microsoft_sign_in(other, two_tenants, "contoso", "megan.bowen@contoso.example").status_code == 302
    for client in (contoso, other, admin_client):
        assert client.get("/auth/verify").status_code == 200

    page = _authorize(admin_client, two_tenants, FABRIKAM_ADMIN, action="change-tenant")
    assert "People signed in through it from the previous tenant were signed out." in page
    assert contoso.get("/auth/verify").status_code == 401
    assert other.get("/auth/verify").status_code == 401
    assert admin_client.get("/auth/verify").status_code == 200  # a session not signed in through it stays
    ended = db.session.scalars(db.select(AuditEvent).filter_by(action="sso.sessions_end")).one()
    assert (ended.target, ended.actor, ended.detail["reason"]) == ("contoso", "admin@example.com", "tenant changed")
    assert ended.detail["from_tenant_id"] == two_tenants.tenant_id
    assert ended.detail["tenant_id"] == _fabrikam_id(two_tenants)
    change = db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.change_tenant")).one()
    assert change.detail["sso_sessions_ended"] == ["contoso"]


def test_a_refused_change_ends_no_session(app: Flask, admin_client: FlaskClient, contoso_sso: Datasource,
                                          two_tenants: EmulatorHandle) -> None:
    from jobs.models import ScheduledTask

    contoso = app.test_client()
    assert microsoft_sign_in(contoso, two_tenants, "contoso", CONTOSO_USER).status_code == 302
    token = csrf_token(admin_client, f"/admin/datasources/{contoso_sso.id}")
    started = admin_client.post(f"/admin/datasources/{contoso_sso.id}/change-tenant", data={"csrf_token": token})
    db.session.add(ScheduledTask(name="Nightly import", datasource_id=contoso_sso.id, owner="admin@example.com"))
    db.session.commit()  # an import set up while the Administrator signs in at Microsoft
    page = admin_client.get(callback_path(sign_in_at_microsoft(two_tenants, started.headers["Location"],
                                                               FABRIKAM_ADMIN))).get_data(as_text=True)
    assert "The tenant of Contoso 365 cannot change" in page
    assert contoso.get("/auth/verify").status_code == 200
    assert db.session.scalars(db.select(SsoProvider)).one().enabled is True
    assert not db.session.scalars(db.select(AuditEvent).filter_by(action="sso.sessions_end")).all()


def test_change_tenant_is_refused_once_the_datasource_imports_users(admin_client: FlaskClient,
                                                                    contoso_sso: Datasource) -> None:
    from jobs.models import ScheduledTask

    db.session.add(ScheduledTask(name="Nightly import", datasource_id=contoso_sso.id, owner="admin@example.com"))
    db.session.commit()
    token = csrf_token(admin_client, f"/admin/datasources/{contoso_sso.id}")
    page = admin_client.post(f"/admin/datasources/{contoso_sso.id}/change-tenant", data={"csrf_token": token},
                             follow_redirects=True).get_data(as_text=True)
    assert "The tenant of Contoso 365 cannot change: it imports users from Contoso" in page
    assert _datasource().tenant_id == contoso_sso.tenant_id
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.change_tenant")).one()
    assert event.outcome == "refused"


def test_a_keep_alive_task_does_not_bind_the_datasource_to_its_tenant(admin_client: FlaskClient,
                                                                      contoso_sso: Datasource,
                                                                      two_tenants: EmulatorHandle) -> None:
    from jobs.models import ScheduledTask

    db.session.add(ScheduledTask(name="Keep Contoso alive", kind=ScheduledTask.KIND_REFRESH,
                                 datasource_id=contoso_sso.id, owner="admin@example.com"))
    db.session.commit()
    page = _authorize(admin_client, two_tenants, FABRIKAM_ADMIN, action="change-tenant")
    assert "Tenant changed from Contoso to Fabrikam." in page and "imports users" not in page
    assert _datasource().tenant_id == _fabrikam_id(two_tenants)
