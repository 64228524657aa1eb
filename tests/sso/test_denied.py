"""The denied page (#14): what was denied and why in words (the rules evaluated again for `rd` with the session),
Request access for a group that would let the person in (one pending request per person and group, only granting
groups), and the decision shown on the next visit. Office 365 sign-in through the tenant emulator, with a
read-write datasource authorized by its Global Administrator (owners and Add User to Group go through it)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import User
from emulator.server import EmulatorHandle
from policies import service as policies
from sso import access_requests as service
from sso.models import AccessRequest
from tests.conftest import csrf_token
from tests.o365_helpers import emulator_env, sign_in_at_microsoft
from tests.o365_ops_helpers import Tenant, authorized_datasource, page_text
from tests.sso_helpers import (
    add_office365_provider,
    enable_sso,
    microsoft_sign_in,
    ready_datasource,
    stored_identity,
    verify_status,
)

ADELE = "adele.vance@contoso.example"
APPROVALS = "https://finance.example.com/approvals/7"
REPORTS = "https://finance.example.com/reports/q4"


@pytest.fixture
def app_env(sso_emulator: EmulatorHandle) -> dict[str, str]:
    return {**emulator_env(sso_emulator), "ALLOWED_REDIRECT_DOMAINS": ".example.com"}


@pytest.fixture
def tenant(sso_emulator: EmulatorHandle) -> Tenant:
    return Tenant(sso_emulator)


@pytest.fixture
def finance(app: Flask, admin_client: FlaskClient, sso_emulator: EmulatorHandle, tenant: Tenant) -> str:
    """SSO through an authorized read-write datasource, and rules: approvals need "Sales and Marketing"."""
    ds = authorized_datasource(admin_client, sso_emulator, app)
    ds.sso_enabled = True
    db.session.commit()
    enable_sso(create_users=True)
    add_office365_provider(ds)
    db.session.commit()
    group = tenant.group("Sales and Marketing")
    policies.save({"hosts": [{"host": "finance.example.com", "default": "signed_in"}], "rules": [
        {"id": "r-approvals", "name": "Finance approvals", "enabled": True, "host": "finance.example.com",
         "paths": ["/approvals/"], "methods": [], "networks": [], "action": "allow",
         "criteria": {"groups_any": [{"id": group, "name": "Sales and Marketing"}]}},
        {"id": "r-reports", "name": "Finance reports", "enabled": True, "host": "finance.example.com",
         "paths": ["/reports/"], "methods": [], "networks": [], "action": "allow",
         "criteria": {"auth_context": "c1"}}]}, actor="test")
    return group


def words(response) -> str:  # type: ignore[no-untyped-def]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page_text(response))).replace(" .", ".").replace(" :", ":")


def denied(client: FlaskClient, url: str):  # type: ignore[no-untyped-def]
    return client.get("/auth/denied?" + urlencode({"rd": url}))


def ask(client: FlaskClient, url: str, group_id: str):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/auth/denied?" + urlencode({"rd": url}))
    return client.post("/auth/access-requests", data={"csrf_token": token, "rd": url, "group_id": group_id},
                       follow_redirects=True)


def test_denied_page_says_why_and_request_access_opens_one_request(
        app: Flask, finance: str, sso_emulator: EmulatorHandle, tenant: Tenant) -> None:
    adele = app.test_client()
    assert microsoft_sign_in(adele, sso_emulator, "contoso", ADELE).status_code == 302
    assert verify_status(adele, APPROVALS) == 403
    page = denied(adele, APPROVALS)
    text = words(page)
    assert page.status_code == 403
    assert "You do not have access to this page" in text and "finance.example.com/approvals/7" in text
    assert "Rule Finance approvals" in text and "Sales and Marketing" in text
    assert "Why" in text and "not in group Sales and Marketing" in text
    assert "Request access to Sales and Marketing" in text

    done = words(ask(adele, APPROVALS, finance))
    assert "Access requested: an owner of Sales and Marketing or an Administrator will decide." in done
    assert "waiting for an owner of the group or an Administrator" in done and "Request access to" not in done
    assert "You already asked to join Sales and Marketing" in words(ask(adele, APPROVALS, finance))
    [req] = db.session.scalars(db.select(AccessRequest)).all()
    assert (req.group_id, req.group_name, req.host, req.path, req.rule_name, req.requester_label) == \
        (finance, "Sales and Marketing", "finance.example.com", "/approvals/7", "Finance approvals", ADELE)
    assert req.approver_ids == [tenant.user("miriam.graham@contoso.example")]

    other = tenant.group("Legal")  # not a group the rule names: nothing is requested
    assert "would not give you access" in words(ask(adele, APPROVALS, other))
    assert db.session.scalar(db.select(db.func.count()).select_from(AccessRequest)) == 1

    admin = db.session.scalar(db.select(User).filter_by(email="admin@example.com"))
    assert service.approve(req, admin)[0]
    assert tenant.user(ADELE) in tenant.members(finance)
    page = denied(adele, APPROVALS)
    text = words(page)
    assert "Your request to join Sales and Marketing (for finance.example.com/approvals/7) was approved" in text
    assert "was approved" not in words(denied(adele, APPROVALS))  # once
    again = re.search(r'href="([^"]+)" id="sign-in-again"', page_text(page))
    assert again and again.group(1).startswith("/sso/login/contoso?next=")  # a fresh sign-in reads the new group
    relogin = adele.get(again.group(1).replace("&amp;", "&"))
    back = sign_in_at_microsoft(sso_emulator, relogin.headers["Location"], ADELE, org_consent=False)
    assert back.status_code == 302
    location = back.headers["Location"].split("://", 1)[1].split("/", 1)[1]
    step = adele.get("/" + location)  # the callback, then /auth/start sends the browser to the page
    assert step.status_code == 302 and adele.get(step.headers["Location"]).headers["Location"] == APPROVALS
    assert verify_status(adele, APPROVALS) == 200


def test_step_up_not_signed_in_and_unknown_addresses(app: Flask, finance: str,
                                                      sso_emulator: EmulatorHandle) -> None:
    anonymous = app.test_client()
    text = words(denied(anonymous, APPROVALS))
    assert "Sign in to continue" in text and "/auth/start?rd=" in page_text(denied(anonymous, APPROVALS))
    bad = denied(anonymous, "https://evil.test/approvals/7")
    assert bad.status_code == 400 and "This address cannot be checked here" in words(bad)

    adele = app.test_client()
    microsoft_sign_in(adele, sso_emulator, "contoso", ADELE)
    text = words(denied(adele, REPORTS))
    assert "This page needs one more sign-in step" in text and "authentication context c1" in text
    assert "Continue" in text and "Request access" not in text
    text = words(denied(adele, "https://finance.example.com/news"))
    assert "You have access to this page" in text and "Open the page" in text


def test_app_roles_from_the_id_token_decide_and_a_denial_without_a_group_says_so(
        app: Flask, sso_emulator: EmulatorHandle, tenant: Tenant) -> None:
    enable_sso(create_users=True)
    add_office365_provider(ready_datasource(sso_emulator))
    policies.save({"hosts": [], "rules": [
        {"id": "r-tools", "name": "Finance tools", "enabled": True, "host": "finance.example.com",
         "paths": ["/tools/"], "methods": [], "networks": [], "action": "allow",
         "criteria": {"app_roles": ["Reader"]}}]}, actor="test")
    tools = "https://finance.example.com/tools/ledger"
    adele = app.test_client()
    microsoft_sign_in(adele, sso_emulator, "contoso", ADELE)
    assert stored_identity(adele)["roles"] == [] and verify_status(adele, tools) == 403
    text = words(denied(adele, tools))
    assert "needs app role Reader" in text and "No group listed by this rule would let you in" in text

    client_id = sso_emulator.config["client_id"]  # the gateway's app registration gets the role, Adele is assigned
    tenant.control("POST", f"clients/{client_id}/app-roles", {"value": "Reader", "displayName": "Finance readers"})
    tenant.control("POST", f"clients/{client_id}/app-role-assignments", {"appRole": "Reader", "principal": ADELE})
    again = app.test_client()
    microsoft_sign_in(again, sso_emulator, "contoso", ADELE)
    assert stored_identity(again)["roles"] == ["Reader"] and verify_status(again, tools) == 200
    assert "You have access to this page" in words(denied(again, tools))
