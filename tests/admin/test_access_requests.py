"""Request access, the approvers' side: a request names the group, host/path and requester; Administrators and the
Office 365 group's owners (read from Graph) approve or refuse it; approval runs Add User to Group through the
datasource (audited like the operation page's); a Graph failure is reported, never a 500; the requester sees the
decision once on their next visit; no duplicate pending request."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import AuditEvent, Datasource, User
from emulator.server import EmulatorHandle
from sso import access_requests as service
from sso.models import AccessRequest
from tests.conftest import make_user, sign_in
from tests.o365_helpers import emulator_env
from tests.o365_ops_helpers import Tenant, authorized_datasource, page_text, post_form

ADELE = "adele.vance@contoso.example"
MIRIAM = "miriam.graham@contoso.example"  # owner of "Sales and Marketing" in the demo tenant
PASSWORD = "a-long-enough-password-1"


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(emulator)


@pytest.fixture
def ds(admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask) -> Datasource:
    return authorized_datasource(admin_client, emulator, app)


def tenant_user(tenant: Tenant, upn: str, *roles: str) -> User:
    user = make_user(upn, PASSWORD, *(roles or ("User",)))
    user.tenant_id, user.object_id = tenant.emulator.tenant_id, tenant.user(upn)
    db.session.commit()
    return user


def ask(user: User, tenant: Tenant, group_name: str) -> tuple[AccessRequest, bool]:
    group = {"id": tenant.group(group_name), "name": group_name}
    return service.open_request(user, {"tid": tenant.emulator.tenant_id}, group, host="finance.example.com",
                                path="/reports/", rule_name="Finance reports",
                                reason=f"not in group {group_name}")


def audit_actions(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(db.select(AuditEvent).filter_by(action=action).order_by(AuditEvent.id)))


def test_request_approve_member_in_the_group_audited_and_seen_once(
        app: Flask, admin_client: FlaskClient, ds: Datasource, tenant: Tenant) -> None:
    adele = tenant_user(tenant, ADELE)
    req, created = ask(adele, tenant, "Sales and Marketing")
    assert created and req.status == "pending" and req.datasource_id == ds.id
    assert req.approver_ids == [tenant.user(MIRIAM)]  # the owners, read from Graph
    again, created_again = ask(adele, tenant, "Sales and Marketing")
    assert not created_again and again.id == req.id
    assert db.session.scalar(db.select(db.func.count()).select_from(AccessRequest)) == 1

    listing = page_text(admin_client.get("/admin/access-requests"))
    assert f"{ADELE} asks to join Sales and Marketing" in listing and "finance.example.com/reports/" in listing
    assert "not in group Sales and Marketing" in listing
    page = post_form(admin_client, f"/admin/access-requests/{req.id}/approve", {}, "/admin/access-requests")
    assert f"Approved: {ADELE} is now a member of Sales and Marketing." in page
    assert tenant.user(ADELE) in tenant.members(tenant.group("Sales and Marketing"))
    db.session.expire_all()
    assert db.session.get(AccessRequest, req.id).status == "approved"
    [operation] = audit_actions("o365.add_user_to_group")
    assert operation.outcome == "success" and operation.actor == "admin@example.com"
    assert operation.detail["input"]["access_request"] == req.id
    assert [e.outcome for e in audit_actions("access_request.approve")] == ["success"]
    assert "already approved" in post_form(admin_client, f"/admin/access-requests/{req.id}/approve", {},
                                           "/admin/access-requests")

    requester = app.test_client()
    assert sign_in(requester, ADELE, PASSWORD).status_code == 302
    home = words(requester.get("/"))
    assert "Your request to join Sales and Marketing (for finance.example.com/reports/) was approved" in home
    assert "was approved" not in words(requester.get("/"))  # shown once


def test_refuse_with_a_note_and_a_new_request_after_it(app: Flask, admin_client: FlaskClient, ds: Datasource,
                                                       tenant: Tenant) -> None:
    adele = tenant_user(tenant, ADELE)
    req, _ = ask(adele, tenant, "Legal")
    page = post_form(admin_client, f"/admin/access-requests/{req.id}/refuse", {"note": "Legal only, sorry"},
                     "/admin/access-requests")
    assert f"Refused: {ADELE} was told." in page
    assert tenant.user(ADELE) not in tenant.members(tenant.group("Legal"))
    assert [e.detail["note"] for e in audit_actions("access_request.refuse")] == ["Legal only, sorry"]
    requester = app.test_client()
    sign_in(requester, ADELE, PASSWORD)
    assert "was refused by admin@example.com" in (home := words(requester.get("/"))) and "Legal only, sorry" in home
    _, created = ask(adele, tenant, "Legal")  # refused: asking again opens a new request
    assert created


def test_an_owner_approves_others_cannot(app: Flask, admin_client: FlaskClient, ds: Datasource,
                                         tenant: Tenant) -> None:
    adele = tenant_user(tenant, ADELE)
    tenant_user(tenant, MIRIAM)
    make_user("plain@example.com", PASSWORD, "User")
    req, _ = ask(adele, tenant, "Sales and Marketing")

    stranger = app.test_client()
    sign_in(stranger, "plain@example.com", PASSWORD)
    assert "No request is waiting for you." in page_text(stranger.get("/admin/access-requests"))
    refused = stranger.post(f"/admin/access-requests/{req.id}/approve",
                            data={"csrf_token": _token(stranger)})
    assert refused.status_code == 403
    assert "Only an Administrator or an owner of the group" in page_text(refused)

    owner = app.test_client()
    sign_in(owner, MIRIAM, PASSWORD)
    home = words(owner.get("/"))
    assert "Access requests 1" in home  # the menu shows owners their waiting requests
    listing = page_text(owner.get("/admin/access-requests"))
    assert f"{ADELE} asks to join Sales and Marketing" in listing
    page = post_form(owner, f"/admin/access-requests/{req.id}/approve", {}, "/admin/access-requests")
    assert "is now a member of Sales and Marketing" in page
    assert tenant.user(ADELE) in tenant.members(tenant.group("Sales and Marketing"))
    assert audit_actions("o365.add_user_to_group")[0].actor == MIRIAM


def test_graph_failure_on_approval_is_reported_and_the_request_stays_pending(
        app: Flask, admin_client: FlaskClient, ds: Datasource, tenant: Tenant) -> None:
    adele = tenant_user(tenant, ADELE)
    req, _ = ask(adele, tenant, "Legal")
    tenant.fault(kind="error", scope="graph", status=503, path="/members/$ref", count=20)
    response = admin_client.post(f"/admin/access-requests/{req.id}/approve",
                                 data={"csrf_token": _token(admin_client)}, follow_redirects=True)
    page = page_text(response)
    assert response.status_code == 200
    assert f"{ADELE} could not be added to Legal" in page and "The request stays pending" in page
    db.session.expire_all()
    assert db.session.get(AccessRequest, req.id).status == "pending"
    assert "Add User to Group failed" in page  # shown on the request
    assert [e.outcome for e in audit_actions("o365.add_user_to_group")] == ["failure"]
    assert [e.outcome for e in audit_actions("access_request.approve")] == ["failure"]
    tenant.control("DELETE", "faults")
    page = post_form(admin_client, f"/admin/access-requests/{req.id}/approve", {}, "/admin/access-requests")
    assert "is now a member of Legal" in page


def words(response) -> str:  # type: ignore[no-untyped-def]
    """The page's text without tags."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page_text(response))).replace(" .", ".")


def _token(client: FlaskClient) -> str:
    from tests.conftest import csrf_token

    return csrf_token(client, "/")
