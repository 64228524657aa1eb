"""Office 365 datasource: create, authorize through MSAL against the emulator, keep the grant, security, delete."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from core.crypto import secret_box
from core.extensions import db
from core.models import AuditEvent, Datasource, PendingFlowEntry, utcnow
from emulator.server import EmulatorHandle
from tests.conftest import csrf_token, make_user, sign_in
from tests.o365_helpers import (
    ADMIN_UPN,
    authorize_datasource,
    callback_path,
    create_datasource,
    datasource_named,
    sign_in_at_microsoft,
    start_authorization,
)

USER_UPN = "adele.vance@contoso.example"


def _control(emulator: EmulatorHandle, method: str, path: str, body: dict | None = None) -> requests.Response:
    response = requests.request(method, f"{emulator.base_url}/_emulator/{path}", json=body, verify=emulator.ca_path,
                                headers={"Authorization": f"Bearer {emulator.config['control_key']}"}, timeout=10)
    assert response.status_code < 300, response.text
    return response


def test_add_new_shows_the_connectors_and_save_creates_an_incomplete_datasource(admin_client: FlaskClient) -> None:
    picker = admin_client.get("/admin/datasources/new").get_data(as_text=True)
    assert "Office 365" in picker and "/admin/datasources/new/office365" in picker
    form = admin_client.get("/admin/datasources/new/office365").get_data(as_text=True)
    assert "Read all users&#39; full profiles" in form and "Enable Azure OpenID Connect Single-Sign-On" in form
    assert "Save the details first" in form
    response = create_datasource(admin_client, "  Contoso 365  ", sso=True)
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Details saved successfully" in page and ">Authorize<" in page
    datasource = datasource_named()
    assert (datasource.status, datasource.sso_enabled, datasource.read_write) == ("incomplete", True, False)
    listing = admin_client.get("/admin/datasources").get_data(as_text=True)
    assert "Contoso 365" in listing and "incomplete" in listing and "admin@example.com" in listing
    assert db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.create")).one().target == \
        "Contoso 365"


@pytest.mark.parametrize(("name", "message"), [
    ("   ", "Enter a display name."),
    ("x" * 101, "Use at most 100 characters."),
    ("CONTOSO 365", "A data source with this name already exists."),
])
def test_bad_details_show_beside_the_field_and_save_nothing(admin_client: FlaskClient, name: str,
                                                             message: str) -> None:
    create_datasource(admin_client)
    response = create_datasource(admin_client, name)
    assert response.status_code == 200 and message in response.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count(Datasource.id))) == 1


def test_second_admin_saving_stale_details_is_told_and_nothing_is_overwritten(admin_client: FlaskClient,
                                                                               app: Flask) -> None:
    create_datasource(admin_client)
    datasource = datasource_named()
    other = app.test_client()
    make_user("second@example.com", "second-admin-pass", "Administrator")
    sign_in(other, "second@example.com", "second-admin-pass")
    first_token = csrf_token(admin_client, f"/admin/datasources/{datasource.id}")
    second_token = csrf_token(other, f"/admin/datasources/{datasource.id}")
    first = admin_client.post(f"/admin/datasources/{datasource.id}", data={
        "csrf_token": first_token, "name": "Renamed by first", "version": "1"})
    assert first.status_code == 302
    second = other.post(f"/admin/datasources/{datasource.id}", data={
        "csrf_token": second_token, "name": "Renamed by second", "read_write": "y", "version": "1"})
    assert second.status_code == 409
    assert "The details changed meanwhile" in second.get_data(as_text=True)
    assert "Renamed by second" in second.get_data(as_text=True)  # what they typed is still in the form
    stored = datasource_named("Renamed by first")
    assert stored.read_write is False and stored.version == 2


def test_authorize_with_an_office365_admin_makes_it_ready(admin_client: FlaskClient,
                                                          emulator: EmulatorHandle) -> None:
    create_datasource(admin_client, read_write=True)
    datasource = datasource_named()
    auth_uri = start_authorization(admin_client, datasource)
    assert auth_uri.startswith(f"{emulator.base_url}/organizations/oauth2/v2.0/authorize?")
    for scope in ("User.Read.All", "Group.Read.All", "Organization.Read.All", "User.ReadWrite.All",
                  "Group.ReadWrite.All", "GroupMember.ReadWrite.All", "LicenseAssignment.ReadWrite.All"):
        assert f"graph.microsoft.com%2F{scope}" in auth_uri
    result = admin_client.get(callback_path(sign_in_at_microsoft(emulator, auth_uri, ADMIN_UPN)))
    assert "Connection test succeeded" in result.get_data(as_text=True)
    datasource = datasource_named()
    assert datasource.status == "ready" and datasource.tenant_id == emulator.tenant_id
    assert datasource.tenant_name == "Contoso" and datasource.authorized_by == ADMIN_UPN
    assert "LicenseAssignment.ReadWrite.All" in datasource.scopes
    details = admin_client.get(f"/admin/datasources/{datasource.id}").get_data(as_text=True)
    assert ">Re-Authorize<" in details and "Connection test succeeded" in details  # the flash waits for this page
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.authorize")).one()
    assert event.outcome == "success" and event.detail["authorized_by"] == ADMIN_UPN


def test_tokens_never_appear_in_the_database_in_clear(admin_client: FlaskClient, emulator: EmulatorHandle,
                                                      app: Flask) -> None:
    create_datasource(admin_client)
    authorize_datasource(admin_client, emulator, datasource_named())
    cache = json.loads(secret_box().decrypt(datasource_named().token_cache))
    secrets = [entry["secret"] for kind in ("AccessToken", "RefreshToken", "IdToken")
               for entry in cache[kind].values()]
    assert all(cache[kind] for kind in ("AccessToken", "RefreshToken", "IdToken"))
    dump = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(table.select()):
            dump.append(repr(tuple(row)))
    text = "\n".join(dump)
    for secret in secrets:
        assert secret[:40] not in text
    assert app.config["O365_CLIENT_SECRET"] not in text


def test_non_admin_office365_account_is_refused_and_nothing_changes(admin_client: FlaskClient,
                                                                    emulator: EmulatorHandle) -> None:
    create_datasource(admin_client)
    authorize_datasource(admin_client, emulator, datasource_named())  # an admin consents for the organization first
    create_datasource(admin_client, "Second")
    second = datasource_named("Second")
    page = authorize_datasource(admin_client, emulator, second, username=USER_UPN)
    assert f"{USER_UPN} is not an Office 365 administrator" in page
    second = datasource_named("Second")
    assert second.status == "incomplete" and second.token_cache is None and second.tenant_id is None
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.authorize", outcome="failure")).one()
    assert "not an Office 365 administrator" in event.detail["reason"]


def test_without_wids_in_the_id_token_the_roles_come_from_graph_member_of(admin_client: FlaskClient,
                                                                          emulator: EmulatorHandle) -> None:
    # An application registered without groupMembershipClaims gets no `wids` claim in its ID tokens.
    _control(emulator, "PATCH", f"clients/{emulator.config['client_id']}", {"group_membership_claims": False})
    create_datasource(admin_client)
    assert "Connection test succeeded" in authorize_datasource(admin_client, emulator, datasource_named())
    assert datasource_named().status == "ready"
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.authorize")).one()
    assert event.outcome == "success"
    _control(emulator, "DELETE", "counters")
    create_datasource(admin_client, "Second")
    page = authorize_datasource(admin_client, emulator, datasource_named("Second"), username=USER_UPN)
    assert f"{USER_UPN} is not an Office 365 administrator" in page
    counters = _control(emulator, "GET", "counters").json()["counters"]
    assert counters.get("GET /v1.0/me/memberOf/microsoft.graph.directoryRole") == 1
    assert datasource_named("Second").status == "incomplete"


def test_member_of_failing_is_reported_not_taken_for_a_non_admin(admin_client: FlaskClient,
                                                                 emulator: EmulatorHandle) -> None:
    _control(emulator, "PATCH", f"clients/{emulator.config['client_id']}", {"group_membership_claims": False})
    create_datasource(admin_client)
    auth_uri = start_authorization(admin_client, datasource_named())
    path = callback_path(sign_in_at_microsoft(emulator, auth_uri, ADMIN_UPN))
    _control(emulator, "POST", "faults", {"kind": "error", "status": 503, "path": "/me/memberOf/"})
    page = admin_client.get(path).get_data(as_text=True)
    assert "Could not check the account&#39;s Office 365 roles: Microsoft Graph answered 503" in page
    assert "not an Office 365 administrator" not in page and datasource_named().status == "incomplete"


def test_cancelled_sign_in_is_reported_and_status_kept(admin_client: FlaskClient,
                                                       emulator: EmulatorHandle) -> None:
    create_datasource(admin_client)
    auth_uri = start_authorization(admin_client, datasource_named())
    response = sign_in_at_microsoft(emulator, auth_uri, ADMIN_UPN, accept_consent=False)
    page = admin_client.get(callback_path(response)).get_data(as_text=True)
    assert "The sign-in was cancelled or refused at Microsoft" in page
    assert datasource_named().status == "incomplete"


def test_unknown_replayed_and_forged_callbacks_change_nothing(admin_client: FlaskClient,
                                                              emulator: EmulatorHandle) -> None:
    create_datasource(admin_client)
    bogus = admin_client.get("/admin/datasources/authorize/callback?state=forged&code=abc")
    assert bogus.status_code == 200 and "expired or was already used" in bogus.get_data(as_text=True)
    auth_uri = start_authorization(admin_client, datasource_named())
    state = parse_qs(urlsplit(auth_uri).query)["state"][0]
    forged = admin_client.get(f"/admin/datasources/authorize/callback?state={state}&code=not-a-real-code")
    assert "Microsoft refused the authorization" in forged.get_data(as_text=True)
    assert datasource_named().status == "incomplete"
    path = callback_path(sign_in_at_microsoft(emulator, auth_uri, ADMIN_UPN))
    assert "expired or was already used" in admin_client.get(path).get_data(as_text=True)  # state used up
    auth_uri = start_authorization(admin_client, datasource_named())
    path = callback_path(sign_in_at_microsoft(emulator, auth_uri, ADMIN_UPN))
    assert "Connection test succeeded" in admin_client.get(path).get_data(as_text=True)
    assert "expired or was already used" in admin_client.get(path).get_data(as_text=True)  # replay
    assert datasource_named().status == "ready"


def test_expired_flow_is_refused(admin_client: FlaskClient, emulator: EmulatorHandle) -> None:
    create_datasource(admin_client)
    auth_uri = start_authorization(admin_client, datasource_named())
    pending = db.session.scalars(db.select(PendingFlowEntry)).one()
    pending.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    page = admin_client.get(callback_path(sign_in_at_microsoft(emulator, auth_uri, ADMIN_UPN)))
    assert "This authorization has expired or was already used" in page.get_data(as_text=True)
    assert datasource_named().status == "incomplete"


def test_token_endpoint_down_is_reported(admin_client: FlaskClient, emulator: EmulatorHandle) -> None:
    create_datasource(admin_client)
    auth_uri = start_authorization(admin_client, datasource_named())
    path = callback_path(sign_in_at_microsoft(emulator, auth_uri, ADMIN_UPN))
    _control(emulator, "POST", "faults", {"kind": "drop", "scope": "token"})
    page = admin_client.get(path)
    assert page.status_code == 200
    assert "Could not reach the Microsoft token service" in page.get_data(as_text=True)
    assert datasource_named().status == "incomplete"


def test_slow_token_endpoint_is_reported(admin_client: FlaskClient, emulator: EmulatorHandle) -> None:
    admin_client.application.config["O365_HTTP_TIMEOUT"] = 1.0
    admin_client.application.extensions.pop("microsoft_settings", None)
    create_datasource(admin_client)
    auth_uri = start_authorization(admin_client, datasource_named())
    path = callback_path(sign_in_at_microsoft(emulator, auth_uri, ADMIN_UPN))
    _control(emulator, "POST", "faults", {"kind": "delay", "scope": "token", "delay_ms": 2500})
    page = admin_client.get(path).get_data(as_text=True)
    assert "Could not reach the Microsoft token service (ReadTimeout)" in page
    assert datasource_named().status == "incomplete"


def test_failed_connection_test_keeps_the_previous_state(admin_client: FlaskClient,
                                                         emulator: EmulatorHandle) -> None:
    create_datasource(admin_client)
    auth_uri = start_authorization(admin_client, datasource_named())
    path = callback_path(sign_in_at_microsoft(emulator, auth_uri, ADMIN_UPN))
    _control(emulator, "POST", "faults", {"kind": "error", "scope": "graph", "status": 403,
                                          "code": "Authorization_RequestDenied", "path": "/organization",
                                          "message": "Insufficient privileges to complete the operation."})
    page = admin_client.get(path).get_data(as_text=True)
    assert "Connection test failed" in page and "Insufficient privileges" in page
    datasource = datasource_named()
    assert datasource.status == "incomplete" and datasource.token_cache is None and datasource.tenant_id is None


def test_revoked_grant_flips_status_on_next_use_with_the_reason(admin_client: FlaskClient,
                                                                emulator: EmulatorHandle) -> None:
    create_datasource(admin_client)
    authorize_datasource(admin_client, emulator, datasource_named())
    datasource = datasource_named()
    _control(emulator, "POST", "revoke", {"user": ADMIN_UPN})
    token = csrf_token(admin_client, f"/admin/datasources/{datasource.id}")
    # The cached access token still works until it expires; force the refresh the way the keep-alive does.
    runner = admin_client.application.test_cli_runner()
    result = runner.invoke(args=["datasources", "refresh"])
    assert result.exit_code == 1 and "AADSTS50173" in result.output
    datasource = datasource_named()
    assert datasource.status == "needs re-authorization"
    assert "revoked in Office 365" in datasource.last_error
    details = admin_client.get(f"/admin/datasources/{datasource.id}").get_data(as_text=True)
    assert "needs to be re-authorized" in details and "AADSTS50173" in details
    listing = admin_client.get("/admin/datasources").get_data(as_text=True)
    assert "needs re-authorization" in listing
    test = admin_client.post(f"/admin/datasources/{datasource.id}/test", data={"csrf_token": token},
                             follow_redirects=True)
    assert "Connection test failed" in test.get_data(as_text=True)


def test_ticking_read_write_after_authorization_asks_for_reauthorization(admin_client: FlaskClient,
                                                                         emulator: EmulatorHandle) -> None:
    create_datasource(admin_client)
    datasource = datasource_named()
    authorize_datasource(admin_client, emulator, datasource)
    token = csrf_token(admin_client, f"/admin/datasources/{datasource.id}")
    saved = admin_client.post(f"/admin/datasources/{datasource.id}", data={
        "csrf_token": token, "name": "Contoso 365", "read_write": "y", "version": str(datasource_named().version)},
        follow_redirects=True)
    page = saved.get_data(as_text=True)
    assert "Details saved successfully" in page and "click Re-Authorize" in page and 'id="write-reauth"' in page
    assert page.count("Re-Authorize before using write operations") + page.count("click Re-Authorize so") == 1
    page = authorize_datasource(admin_client, emulator, datasource_named())
    assert "Connection test succeeded" in page
    assert 'id="write-reauth"' not in admin_client.get(f"/admin/datasources/{datasource.id}").get_data(as_text=True)
    assert db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.reauthorize")).one()


def test_reauthorization_warning_from_14_days_before_six_months(admin_client: FlaskClient,
                                                               emulator: EmulatorHandle) -> None:
    create_datasource(admin_client)
    authorize_datasource(admin_client, emulator, datasource_named())
    datasource = datasource_named()
    datasource.authorized_at = utcnow() - timedelta(days=170)
    db.session.commit()
    listing = admin_client.get("/admin/datasources").get_data(as_text=True)
    due = (datasource.authorized_at + timedelta(days=182)).strftime("%Y-%m-%d")
    assert f"Re-authorization is due on {due}" in listing
    assert f"Re-authorization is due on {due}" in admin_client.get("/admin/").get_data(as_text=True)
    datasource.authorized_at = utcnow() - timedelta(days=100)
    db.session.commit()
    assert "Re-authorization is due" not in admin_client.get("/admin/datasources").get_data(as_text=True)


def test_security_limits_who_administers_and_who_uses(admin_client: FlaskClient, app: Flask) -> None:
    create_datasource(admin_client)
    datasource = datasource_named()
    make_user("ds@example.com", "datasource-pass", "Manage datasources")
    make_user("other@example.com", "other-pass-123", "Manage datasources")
    token = csrf_token(admin_client, f"/admin/datasources/{datasource.id}/security")
    lockout = admin_client.post(f"/admin/datasources/{datasource.id}/security", data={
        "csrf_token": token, "admin_users": "ds@example.com"})
    assert "Include yourself" in lockout.get_data(as_text=True)
    assert datasource_named().admin_users == []
    saved = admin_client.post(f"/admin/datasources/{datasource.id}/security", data={
        "csrf_token": token, "admin_users": "DS@example.com, admin@example.com", "user_users": "other@example.com"})
    assert saved.status_code == 302
    datasource = datasource_named()
    assert datasource.admin_users == ["admin@example.com", "ds@example.com"]
    assert datasource.user_users == ["other@example.com"]
    other = app.test_client()
    sign_in(other, "other@example.com", "other-pass-123")
    assert other.get(f"/admin/datasources/{datasource.id}").status_code == 200  # a connection user may look
    for path in ("security", "delete"):
        assert other.get(f"/admin/datasources/{datasource.id}/{path}").status_code == 403
    other_token = csrf_token(other, f"/admin/datasources/{datasource.id}")
    assert other.post(f"/admin/datasources/{datasource.id}/authorize",
                      data={"csrf_token": other_token}).status_code == 403
    assert other.post(f"/admin/datasources/{datasource.id}", data={
        "csrf_token": other_token, "name": "Hijacked", "version": "2"}).status_code == 403
    assert db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.security")).one()


def test_delete_says_what_depends_on_it_and_removes_its_tokens(admin_client: FlaskClient,
                                                               emulator: EmulatorHandle) -> None:
    create_datasource(admin_client, sso=True)
    datasource = datasource_named()
    authorize_datasource(admin_client, emulator, datasource)
    confirm = admin_client.get(f"/admin/datasources/{datasource.id}/delete").get_data(as_text=True)
    assert "Single sign-on" in confirm and "stored Office 365 tokens" in confirm
    token = csrf_token(admin_client, f"/admin/datasources/{datasource.id}/delete")
    response = admin_client.post(f"/admin/datasources/{datasource.id}/delete", data={"csrf_token": token},
                                 follow_redirects=True)
    assert "deleted, with its stored tokens" in response.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count(Datasource.id))) == 0
    assert db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.delete")).one()


def test_cli_list_and_test(admin_client: FlaskClient, emulator: EmulatorHandle) -> None:
    create_datasource(admin_client)
    runner = admin_client.application.test_cli_runner()
    assert "not authorized" in runner.invoke(args=["datasources", "list"]).output
    failed = runner.invoke(args=["datasources", "test", "contoso 365"])
    assert failed.exit_code == 1 and "has not been authorized yet" in failed.output
    authorize_datasource(admin_client, emulator, datasource_named())
    listed = runner.invoke(args=["datasources", "list"]).output
    assert "ready" in listed and f"tenant={emulator.tenant_id}" in listed
    tested = runner.invoke(args=["datasources", "test", "Contoso 365"])
    assert tested.exit_code == 0 and "Connection test succeeded" in tested.output
    refreshed = runner.invoke(args=["datasources", "refresh"])
    assert refreshed.exit_code == 0 and "Tokens refreshed" in refreshed.output
    assert runner.invoke(args=["datasources", "test", "nope"]).exit_code != 0


def test_security_by_local_group(admin_client: FlaskClient, app: Flask) -> None:
    from core.models import Group

    create_datasource(admin_client)
    datasource = datasource_named()
    member = make_user("helpdesk@example.com", "helpdesk-pass-1", "User")
    make_user("outsider@example.com", "outsider-pass-1", "User")
    group = Group(name="Helpdesk", members=[member])
    db.session.add(group)
    db.session.commit()
    token = csrf_token(admin_client, f"/admin/datasources/{datasource.id}/security")
    page = admin_client.get(f"/admin/datasources/{datasource.id}/security").get_data(as_text=True)
    assert "Helpdesk" in page
    saved = admin_client.post(f"/admin/datasources/{datasource.id}/security", data={
        "csrf_token": token, "user_groups_allowed": [str(group.id)]})
    assert saved.status_code == 302
    assert datasource_named().user_groups_allowed == [group.id]
    from core.access import can_administer_datasource, can_use_datasource
    from core.models import User

    users = {u.email: u for u in db.session.scalars(db.select(User))}
    assert can_use_datasource(users["helpdesk@example.com"], datasource_named())
    assert not can_use_datasource(users["outsider@example.com"], datasource_named())
    assert not can_use_datasource(users["admin@example.com"], datasource_named())  # no longer the default
    assert can_administer_datasource(users["admin@example.com"], datasource_named())  # administrators unchanged


def test_delete_lists_scheduled_tasks_that_go_with_it(admin_client: FlaskClient) -> None:
    from jobs.models import ScheduledTask

    create_datasource(admin_client)
    datasource = datasource_named()
    db.session.add(ScheduledTask(name="Nightly import", datasource_id=datasource.id, owner="admin@example.com"))
    db.session.commit()
    confirm = admin_client.get(f"/admin/datasources/{datasource.id}/delete").get_data(as_text=True)
    assert "Scheduled tasks, deleted with it: Nightly import." in confirm


def test_test_connection_redeems_the_grant_so_removed_consent_is_caught(admin_client: FlaskClient,
                                                                        emulator: EmulatorHandle) -> None:
    create_datasource(admin_client)
    authorize_datasource(admin_client, emulator, datasource_named())
    datasource = datasource_named()
    token = csrf_token(admin_client, f"/admin/datasources/{datasource.id}")
    _control(emulator, "DELETE", "counters")
    passed = admin_client.post(f"/admin/datasources/{datasource.id}/test", data={"csrf_token": token},
                               follow_redirects=True).get_data(as_text=True)
    assert "Connection test succeeded" in passed
    token_calls = _control(emulator, "GET", "counters").json()["counters"]
    assert token_calls.get("POST /<tenant>/oauth2/v2.0/token") == 1  # the refresh token was redeemed
    # An Office 365 administrator removes the consent; the cached access token would still be accepted by Graph.
    _control(emulator, "POST", "grants/revoke", {"client_id": emulator.config["client_id"]})
    failed = admin_client.post(f"/admin/datasources/{datasource.id}/test", data={"csrf_token": token},
                               follow_redirects=True).get_data(as_text=True)
    assert "Connection test succeeded" not in failed
    assert ("Connection test failed: this data source needs re-authorization. AADSTS65001: Consent for the "
            "gateway was removed in Office 365. Click Re-Authorize.") in failed
    assert datasource_named().status == "needs re-authorization"
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="datasource.test", outcome="failure")).one()
    assert "AADSTS65001" in event.detail["message"]


def test_operations_panel_names_the_seeds_ten_operations(admin_client: FlaskClient) -> None:
    from office365.operations import OPERATIONS

    create_datasource(admin_client)
    datasource = datasource_named()
    datasource.status, datasource.tenant_id = Datasource.READY, "00000000-0000-0000-0000-000000000001"
    db.session.commit()
    page = admin_client.get(f"/admin/datasources/{datasource.id}").get_data(as_text=True)
    panel = page[page.index('id="operations"'):]
    seed_names = ["User List", "Group List", "Find Users", "Find Groups", "Create Group", "Add User to Group",
                  "Remove User From Group", "Licence Plan List", "Assign Licence to User", "Remove Licence from User"]
    for name in seed_names:
        assert f">{name}<" in panel, name
    assert {op.label for op in OPERATIONS.values()} == set(seed_names)
    assert "members" not in panel and "Assign · Remove" not in panel
    assert f'href="/admin/datasources/{datasource.id}/o365/groups/new"' in panel  # Create Group goes to its form
