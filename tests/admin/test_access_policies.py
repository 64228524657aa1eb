"""Administration > Access policies through its forms, on SQLite and PostgreSQL: add, edit, reorder, enable and
disable, duplicate, delete (each a new version), host defaults, the engine's problems beside their fields with what
was typed kept, a rule changed meanwhile, the history with its diffs; the group picker against the emulated tenant
(search by name, no datasource, Graph throttling) and a group typed by name without the picker."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from emulator.server import EmulatorHandle
from policies import service
from tests.conftest import csrf_token
from tests.o365_ops_helpers import Tenant, authorized_datasource, page_text

BASE = "/admin/access-policies"
FINANCE = {"id": "0b4f5a3e-0000-4000-8000-00000000f1a0", "name": "Finance Approvers"}


def _rule(**fields: object) -> dict[str, object]:
    data: dict[str, object] = {"name": "Finance reports", "enabled": "y", "action": "allow",
                               "host": "finance.example.com", "paths": "/reports/*", "methods": ["GET", "POST"]}
    data.update(fields)
    return data


def _post(client: FlaskClient, path: str, data: dict[str, object], form_page: str | None = None):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf_token(client, form_page or BASE), **data})


def plain(response) -> str:  # type: ignore[no-untyped-def]
    """The page's text without its tags (a sentence spans several elements)."""
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page_text(response)))
    return text.replace("&gt;", ">").replace("&lt;", "<")


def _ids() -> list[str]:
    return [rule["id"] for rule in service.current()[1]["rules"]]


def _names() -> list[str]:
    return [rule["name"] for rule in service.current()[1]["rules"]]


def test_add_edit_reorder_toggle_duplicate_delete(admin_client: FlaskClient) -> None:
    assert "No rules yet" in page_text(admin_client.get(BASE))
    answer = _post(admin_client, f"{BASE}/new-rule", _rule(group_label=f"{FINANCE['id']}|{FINANCE['name']}",
                                                            groups_any=FINANCE["id"], note="first rule"))
    assert answer.status_code == 302, page_text(answer)
    number, document = service.current()
    assert number == 1
    finance = document["rules"][0]
    assert (finance["host"], finance["paths"], finance["methods"], finance["criteria"]) == (
        "finance.example.com", ["/reports/*"], ["GET", "POST"], {"groups_any": [FINANCE]})
    listing = plain(admin_client.get(BASE))
    assert "GET, POST finance.example.com /reports/* — allow members of Finance Approvers" in listing

    edit = f"{BASE}/rules/{finance['id']}"
    form = page_text(admin_client.get(edit))
    assert 'value="Finance reports"' in form and "/reports/*" in form and "Finance Approvers" in form
    answer = _post(admin_client, edit, _rule(name="Finance", paths="/reports/*\n/api/*.json", methods=[],
                                             app_roles="Reader, Auditor", max_auth_age_minutes="15",
                                             auth_context="c1", groups_any=FINANCE["id"],
                                             group_label=f"{FINANCE['id']}|{FINANCE['name']}"), edit)
    assert answer.status_code == 302, page_text(answer)
    rule = service.current()[1]["rules"][0]
    assert rule["id"] == finance["id"] and rule["methods"] == [] and rule["paths"] == ["/reports/*", "/api/*.json"]
    assert rule["criteria"] == {"groups_any": [FINANCE], "app_roles": ["Reader", "Auditor"],
                                "max_auth_age_minutes": 15, "auth_context": "c1"}
    assert ("Any method finance.example.com /reports/*, /api/*.json — allow members of Finance Approvers and with "
            "app roles Reader and Auditor and signed in within 15 min and with authentication context c1"
            ) in plain(admin_client.get(BASE))

    assert _post(admin_client, f"{BASE}/new-rule", {"name": "Health", "enabled": "y", "action": "public",
                                                     "host": "*", "paths": "/healthz",
                                                     "app_roles": "ignored for public"}).status_code == 302
    assert service.current()[1]["rules"][1]["criteria"] == {}  # a public rule keeps no criteria
    health = _ids()[1]
    assert _post(admin_client, f"{BASE}/rules/{health}/move-up", {}).status_code == 302
    assert _names() == ["Health", "Finance"]
    answer = _post(admin_client, f"{BASE}/rules/{health}/move-up", {})
    assert "is already first" in page_text(admin_client.get(answer.headers["Location"]))
    assert _post(admin_client, f"{BASE}/rules/{health}/move-down", {}).status_code == 302
    assert _names() == ["Finance", "Health"]

    assert _post(admin_client, f"{BASE}/rules/{finance['id']}/toggle", {}).status_code == 302
    assert service.current()[1]["rules"][0]["enabled"] is False
    assert "disabled" in page_text(admin_client.get(BASE))
    assert _post(admin_client, f"{BASE}/rules/{finance['id']}/toggle", {}).status_code == 302
    assert service.current()[1]["rules"][0]["enabled"] is True

    assert _post(admin_client, f"{BASE}/rules/{finance['id']}/duplicate", {}).status_code == 302
    rules = service.current()[1]["rules"]
    assert [r["name"] for r in rules] == ["Finance", "Finance (copy)", "Health"]
    assert rules[1]["enabled"] is False and rules[1]["id"] != finance["id"]
    assert rules[1]["criteria"] == rules[0]["criteria"]

    delete = f"{BASE}/rules/{rules[1]['id']}/delete"
    assert "Delete the rule “Finance (copy)”?" in page_text(admin_client.get(delete))
    assert _post(admin_client, delete, {}, delete).status_code == 302
    assert _names() == ["Finance", "Health"]
    assert service.latest_number() == 9  # every change was a version of its own

    history = plain(admin_client.get(f"{BASE}/history"))
    assert "Version 9" in history and "by admin@example.com" in history and "“first rule”" in history
    for line in ("removed rule 'Finance (copy)'", "added rule 'Finance (copy)' at 2 (disabled)",
                 "disabled rule 'Finance'", "moved rule 'Health' from 2 to 1", "renamed rule 'Finance reports' to "
                 "'Finance'", "rule 'Finance': methods [GET, POST] -> []", "added rule 'Finance reports' at 1"):
        assert line in history, line
    assert admin_client.get(f"{BASE}/rules/r-nosuch").status_code == 404
    assert admin_client.post(f"{BASE}/rules/r-nosuch/toggle",
                             data={"csrf_token": csrf_token(admin_client, BASE)}).status_code == 404


def test_problems_beside_their_fields_and_nothing_typed_lost(admin_client: FlaskClient) -> None:
    answer = _post(admin_client, f"{BASE}/new-rule", _rule(
        name="", host="not a host!", paths="/ok/\nreports", networks="10.0.0.0/8\n300.1.1.1/8",
        emails="ann@example.com\nnot-an-address", max_auth_age_minutes="soon", auth_context="c100",
        domains="example.com, bad_domain", groups_any="not a group id!"))
    assert answer.status_code == 400
    page = page_text(answer)
    assert "The rule was not saved: correct the marked fields." in page
    errors = dict(re.findall(r'<div class="invalid-feedback d-block" id="([\w-]+)-error">([^<]*)</div>', page))
    assert errors["name"] == "Give the rule a name."
    assert errors["host"].startswith("Must be a host name")
    assert errors["paths"] == "Line 2: A path must start with /"
    assert errors["networks"].startswith("Line 2: Must be an IP network in CIDR form")
    assert errors["emails"] == "Line 2: Must be an e-mail address"
    assert errors["domains"].startswith("Entry 2: Must be a domain name")
    assert "digits 0-9" in errors["max_auth_age_minutes"]
    assert "c1 to c99" in errors["auth_context"]
    assert errors["groups_any-search"] == "Group 1: A group needs its object id"
    for typed in ('value="not a host!"', "/ok/ reports", "300.1.1.1/8", "not-an-address", 'value="soon"',
                  'value="c100"', "bad_domain"):
        assert typed in page, typed
    assert 'aria-invalid="true"' in page and '<details id="more-criteria" open>' in page
    assert service.latest_number() == 0  # nothing saved

    ok = _post(admin_client, f"{BASE}/new-rule", _rule())
    assert ok.status_code == 302
    rule_id = _ids()[0]
    edit = f"{BASE}/rules/{rule_id}"
    stale = re.search(r'name="digest" value="(\w+)"', admin_client.get(edit).get_data(as_text=True)).group(1)
    assert _post(admin_client, f"{BASE}/rules/{rule_id}/toggle", {}).status_code == 302  # someone else, meanwhile
    answer = _post(admin_client, edit, _rule(name="Mine", digest=stale), edit)
    assert answer.status_code == 400 and "Someone changed this rule since you opened it" in page_text(answer)
    assert 'value="Mine"' in page_text(answer) and _names() == ["Finance reports"]
    fresh = re.search(r'name="digest" value="(\w+)"', answer.get_data(as_text=True)).group(1)
    assert _post(admin_client, edit, _rule(name="Mine", digest=fresh), edit).status_code == 302
    assert _names() == ["Mine"]

    form = page_text(admin_client.get(f"{BASE}/new-rule?copy={rule_id}"))
    assert 'value="Mine (copy)"' in form and '<option value="2" selected>2: last</option>' in form
    assert _post(admin_client, f"{BASE}/new-rule", _rule(name="Top", place="1")).status_code == 302
    assert _post(admin_client, f"{BASE}/new-rule", _rule(name="Bottom", place="99")).status_code == 302
    assert _names() == ["Top", "Mine", "Bottom"]
    answer = _post(admin_client, f"{BASE}/new-rule", _rule(name="Second", place="2", paths="nope"))
    assert answer.status_code == 400 and '<option value="2" selected>2: before “Mine”</option>' in page_text(answer)
    assert "Line 1: A path must start with /" in page_text(answer)  # the error found at the new rule's place


def test_host_defaults(admin_client: FlaskClient) -> None:
    answer = _post(admin_client, f"{BASE}/hosts", {"host": ["locked.example.com", ""],
                                                   "default": ["deny", "signed_in"]})
    assert answer.status_code == 302
    assert service.current()[1]["hosts"] == [{"host": "locked.example.com", "default": "deny"}]
    answer = _post(admin_client, f"{BASE}/hosts", {"host": ["locked.example.com", "bad host!"],
                                                   "default": ["deny", "signed_in"]})
    assert answer.status_code == 400
    page = page_text(answer)
    assert '<div class="invalid-feedback d-block" id="host-1-error">Must be a host name or *.example.com</div>' in page
    assert 'value="bad host!"' in page
    assert len(service.current()[1]["hosts"]) == 1
    answer = _post(admin_client, f"{BASE}/hosts", {"host": ["locked.example.com", "*.example.org", ""],
                                                   "default": ["deny", "signed_in", "signed_in"], "remove": "0"})
    assert answer.status_code == 302
    assert service.current()[1]["hosts"] == [{"host": "*.example.org", "default": "signed_in"}]
    assert "added host *.example.org (default signed_in)" in page_text(admin_client.get(f"{BASE}/history"))


def test_host_claim_headers_in_the_editor(admin_client: FlaskClient) -> None:
    """Issue 14, point 7: one `Header: claim` per line beside each host; a bad line is marked on its row and
    nothing is saved."""
    answer = _post(admin_client, f"{BASE}/hosts", {"host": ["app.example.com", ""], "default": ["signed_in"] * 2,
                                                   "headers": ["X-Auth-Request-Roles: Roles\n\nX-Auth-Tenant: tid",
                                                               ""]})
    assert answer.status_code == 302
    assert service.current()[1]["hosts"] == [{"host": "app.example.com", "default": "signed_in", "headers": {
        "X-Auth-Request-Roles": "roles", "X-Auth-Tenant": "tid"}}]
    page = page_text(admin_client.get(BASE))
    assert "X-Auth-Request-Roles: roles X-Auth-Tenant: tid</textarea>" in page  # one per line
    answer = _post(admin_client, f"{BASE}/hosts", {"host": ["app.example.com", ""], "default": ["signed_in"] * 2,
                                                   "headers": ["X-Auth-Request-Roles: department", ""]})
    assert answer.status_code == 400
    assert "The claim must be one of: roles, groups" in page_text(answer)
    assert "X-Auth-Request-Roles: department</textarea>" in page_text(answer)  # what was typed is kept
    assert service.current()[1]["hosts"][0]["headers"] == {"X-Auth-Request-Roles": "roles", "X-Auth-Tenant": "tid"}
    assert "host app.example.com: headers (none) -&gt; [X-Auth-Request-Roles: roles, X-Auth-Tenant: tid]" in \
        page_text(admin_client.get(f"{BASE}/history"))


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    from tests.o365_helpers import emulator_env

    return emulator_env(emulator)


@pytest.mark.one_backend  # what differs by database is covered above; this is about Graph
def test_group_picker_against_the_tenant(admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask,
                                         tenant: Tenant) -> None:
    search = f"{BASE}/groups"
    answer = admin_client.get(search, query_string={"q": "Leg"})
    assert answer.status_code == 409
    assert "No Office 365 data source is ready" in answer.get_json()["error"]["message"]
    assert "No Office 365 data source is ready" in page_text(admin_client.get(f"{BASE}/new-rule"))

    ds = authorized_datasource(admin_client, emulator, app)
    legal = tenant.group("Legal")
    answer = admin_client.get(search, query_string={"q": "Leg"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    found = answer.get_json()["groups"]
    assert {"id": legal, "name": "Legal"} in [{"id": g["id"], "name": g["name"]} for g in found]
    assert all(g["name"].lower().startswith("leg") or "leg" in (g["detail"] or "").lower() for g in found)
    assert admin_client.get(search, query_string={"q": "zzzz-nothing"}).get_json()["groups"] == []
    chosen = admin_client.get(search, query_string={"q": "Leg", "datasource": ds.id})
    assert chosen.get_json()["datasource"] == "Contoso"
    assert admin_client.get(search, query_string={"q": "Leg", "datasource": ds.id + 1}).status_code == 409
    assert admin_client.get(search, query_string={"q": "Leg", "datasource": "x"}).status_code == 422

    tenant.fault(kind="throttle", path="/v1.0/groups", retry_after=0, seconds=30)
    answer = admin_client.get(search, query_string={"q": "Leg"})
    assert answer.status_code == 503 and "throttling" in answer.get_json()["error"]["message"]
    page = _post(admin_client, f"{BASE}/new-rule", _rule(groups_any_text="Legal"))
    assert page.status_code == 400 and "throttling" in page_text(page) and 'value="Legal"' in page_text(page)
    tenant.control("DELETE", "faults")

    # No script: the exact name typed in the picker's box is looked up when saving.
    page = _post(admin_client, f"{BASE}/new-rule", _rule(groups_any_text="No Such Group"))
    assert page.status_code == 400 and 'No group is named "No Such Group".' in page_text(page)
    assert _post(admin_client, f"{BASE}/new-rule", _rule(groups_all_text="legal")).status_code == 302
    assert service.current()[1]["rules"][0]["criteria"] == {"groups_all": [{"id": legal, "name": "Legal"}]}
    assert "allow members of Legal" in plain(admin_client.get(BASE))


def test_what_if(admin_client: FlaskClient) -> None:
    from tests.conftest import make_user

    make_user("ann@example.com", None, "User")
    service.save({"hosts": [{"host": "finance.example.com", "default": "deny"}], "rules": [
        {"id": "r-health", "name": "Health", "host": "*", "paths": ["/healthz"], "action": "public"},
        {"id": "r-fin", "name": "Finance reports", "host": "finance.example.com", "paths": ["/reports/"],
         "criteria": {"groups_any": [FINANCE]}}]}, "admin@example.com")
    ask = {"user": "ann@example.com", "url": "https://finance.example.com/reports/q3", "method": "GET"}
    page = plain(admin_client.get(f"{BASE}/what-if", query_string=ask))
    assert "Decision for ann@example.com" in page
    assert "denied by rule “Finance reports”: not in group Finance Approvers" in page
    assert "Would be let in as a member of Finance Approvers" in page
    assert re.search(r"1 Health skipped", page) and re.search(r"2 Finance reports denied", page)
    page = plain(admin_client.get(f"{BASE}/what-if", query_string={**ask, "groups": FINANCE["id"]}))
    assert "allowed by rule “Finance reports”" in page
    page = plain(admin_client.get(f"{BASE}/what-if", query_string={**ask, "user": "", "url":
                                                                     "https://finance.example.com/other"}))
    assert "Decision for someone not signed in" in page and "not signed in" in page
    answer = admin_client.get(f"{BASE}/what-if", query_string={**ask, "url": "finance.example.com", "user": "x@y.z"})
    assert answer.status_code == 400
    assert "Give a whole address starting with https://" in plain(answer) and "No gateway user x@y.z" in plain(answer)
