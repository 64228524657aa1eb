"""The operation pages with bad input and faults: each says what happened and what to do, never a 500 and
never a silent success; who may open them (Connection users, not others); writes refused on a read-only
datasource are audited."""

from __future__ import annotations

import uuid

from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import AuditEvent, Datasource
from emulator.server import EmulatorHandle
from tests.conftest import csrf_token, make_user, sign_in
from tests.o365_ops_helpers import ADMIN_UPN, Tenant, authorized_datasource, page_text, post_form


def test_bad_input_on_the_pages(admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask,
                                tenant: Tenant) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    base = f"/admin/datasources/{ds.id}/o365"
    ghost, adele, legal = str(uuid.uuid4()), tenant.user("adele.vance@contoso.example"), tenant.group("Legal")

    assert f"The group {ghost} does not exist" in page_text(admin_client.get(f"{base}/groups/{ghost}"))
    assert f"The user {ghost} does not exist" in page_text(admin_client.get(f"{base}/users/{ghost}"))
    assert "not a valid group id" in page_text(admin_client.get(f"{base}/groups/nonsense"))
    assert "This page link is not valid here" in page_text(admin_client.get(f"{base}/users?cursor=https://x.example/"))

    page = post_form(admin_client, f"{base}/groups/new", {"display_name": "Bad", "mail_nickname": "bad nick",
                                                      "group_type": "security"}, f"{base}/groups/new")
    assert "may not contain space" in page and "Suggestion: bad" in page
    page = post_form(admin_client, f"{base}/groups/new", {"display_name": "Legal", "group_type": "security"},
                 f"{base}/groups/new")
    assert "The mail nickname 'legal' is already used by another group" in page and "Suggestion: legal-2" in page

    group_page = f"{base}/groups/{legal}"
    page = post_form(admin_client, f"{base}/groups/{legal}/members", {"user_id": ghost}, group_page)
    assert f"The user {ghost} does not exist in the tenant" in page
    page = post_form(admin_client, f"{base}/groups/{legal}/members", {"user_id_text": "adele.vance@contoso.example"},
                 group_page)
    assert "The user was added to the group." in page and adele in tenant.members(legal)
    page = post_form(admin_client, f"{base}/groups/{legal}/members", {"user_id": adele}, group_page)
    assert "Already a member" in page
    remove = f"{base}/groups/{legal}/members/{adele}/remove"
    assert "The user was removed from the group." in post_form(admin_client, remove, {}, remove)
    again = post_form(admin_client, remove, {}, group_page)
    assert "The user is not a member of the group; nothing was changed" in again
    assert adele not in tenant.members(legal)

    e5 = tenant.sku("SPE_E5")
    free = [r[0] for r in tenant.conn().execute(
        "SELECT id FROM users WHERE usage_location IS NOT NULL AND account_enabled = 1 AND id NOT IN "
        "(SELECT user_id FROM user_licenses WHERE sku_id = ?) ORDER BY seq LIMIT 2", (e5,))]
    assign = f"{base}/licences/assign"
    page = post_form(admin_client, assign, {"user_id": free[0], "sku_id": e5}, assign)
    assert "Microsoft 365 E5 was assigned to the user." in page and e5 in tenant.licences(free[0])
    page = post_form(admin_client, assign, {"user_id": free[1], "sku_id": e5}, assign)
    assert "No seats are left for Microsoft 365 E5 (10 of 10 used)" in page and e5 not in tenant.licences(free[1])
    page = post_form(admin_client, assign, {"user_id": free[1]}, assign)
    assert "Pick a licence plan." in page
    remove_licence = f"{base}/users/{free[1]}/licences/{e5}/remove"
    assert "does not hold licence plan" in post_form(admin_client, remove_licence, {}, remove_licence)


def test_read_only_datasource_and_who_may_use_the_pages(admin_client: FlaskClient,
                                                        emulator: EmulatorHandle, app: Flask,
                                                        tenant: Tenant) -> None:
    ds = authorized_datasource(admin_client, emulator, app, read_write=False)
    base, legal = f"/admin/datasources/{ds.id}/o365", tenant.group("Legal")
    adele = tenant.user("adele.vance@contoso.example")
    group_page = page_text(admin_client.get(f"{base}/groups/{legal}"))
    assert "Read only" in group_page and "This data source is read-only" in group_page
    page = post_form(admin_client, f"{base}/groups/{legal}/members", {"user_id": adele}, f"{base}/groups/{legal}")
    assert '"Add User to Group" changes the tenant, but this data source is read-only; nothing was sent.' in page
    assert 'tick "Read and write users & groups"' in page
    page = post_form(admin_client, f"{base}/groups/new", {"display_name": "Never", "group_type": "security"},
                 f"{base}/groups/new")
    assert "this data source is read-only" in page
    assert adele not in tenant.members(legal)
    events = db.session.scalars(db.select(AuditEvent).where(AuditEvent.action.like("o365.%"))).all()
    assert {(e.operation, e.outcome) for e in events} == {("Add User to Group", "refused"),
                                                          ("Create Group", "refused")}

    helpdesk = make_user("helpdesk@example.com", "helpdesk-password", "User")
    client = app.test_client()
    sign_in(client, helpdesk.email, "helpdesk-password")
    refused = client.get(f"{base}/users")
    assert refused.status_code == 403 and "not one of the Connection users" in page_text(refused)
    assert "No data source lists you" in page_text(client.get("/admin/o365"))
    db.session.get(Datasource, ds.id).user_users = ["helpdesk@example.com"]
    db.session.commit()
    assert "User List" in page_text(client.get(f"{base}/users"))  # a plain User listed as Connection user may
    home = page_text(client.get("/admin/o365"))
    assert 'href="/admin/o365">Office 365</a>' in home and f'href="{base}/users"' in home
    assert client.get("/admin/datasources").status_code == 403  # ...but gets nothing else of the admin area

    admin_client.post("/admin/datasources/new/office365", data={
        "csrf_token": csrf_token(admin_client, "/admin/datasources/new/office365"), "name": "Not yet"})
    incomplete = db.session.scalars(db.select(Datasource).filter_by(name="Not yet")).one()
    answer = admin_client.get(f"/admin/datasources/{incomplete.id}/o365/users")
    assert answer.status_code == 409 and "has not been authorized yet" in page_text(answer)


def test_faults_on_the_pages(admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask,
                             tenant: Tenant) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    base, legal = f"/admin/datasources/{ds.id}/o365", tenant.group("Legal")
    adele = tenant.user("adele.vance@contoso.example")

    tenant.fault(kind="throttle", path="/v1.0/users", retry_after=0, seconds=10)
    assert "Microsoft Graph is throttling this tenant. Wait a minute" in page_text(admin_client.get(f"{base}/users"))
    tenant.control("DELETE", "faults")
    tenant.fault(kind="error", status=502, path="/subscribedSkus", seconds=10)
    page = page_text(admin_client.get(f"{base}/licences"))
    assert "Microsoft Graph did not answer properly. Try again in a few minutes." in page
    tenant.control("DELETE", "faults")
    tenant.fault(kind="drop", path="/members/$ref", method="POST", count=1)
    page = post_form(admin_client, f"{base}/groups/{legal}/members", {"user_id": adele}, f"{base}/groups/{legal}")
    assert "may or may not have been applied" in page
    tenant.control("DELETE", "faults")

    tenant.control("POST", "revoke", {"user": ADMIN_UPN})
    tenant.fault(kind="error", status=401, path="/v1.0/", count=1)
    page = page_text(admin_client.get(f"{base}/groups"))
    assert "needs to be re-authorized" in page and "Re-Authorize" in page
    db.session.expire_all()
    assert db.session.get(Datasource, ds.id).status == Datasource.NEEDS_REAUTHORIZATION


