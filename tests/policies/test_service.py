"""policies.service: validation at field paths, versions, the audited readable diff, group names refreshed."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from core.extensions import db
from core.models import AuditEvent, Group
from policies import service
from policies.service import PolicyInvalid
from tests.policies.conftest import FINANCE


def test_first_save_is_version_one_and_current_returns_it(app: Flask, finance_document: dict[str, Any]) -> None:
    assert service.current() == (0, {"hosts": [], "rules": []})
    number = service.save(finance_document, actor="admin@example.com", note="first")
    assert number == 1
    version, document = service.current()
    assert version == 1
    assert [rule["id"] for rule in document["rules"]] == ["r-health", "r-fin"]
    assert document["rules"][1]["criteria"] == {"groups_any": [FINANCE]}
    assert document["rules"][0]["enabled"] is True and document["rules"][0]["methods"] == []
    assert service.save(document, actor="admin@example.com") == 2
    assert [v.number for v in service.versions()] == [2, 1]
    assert service.versions()[1].created_by == "admin@example.com" and service.versions()[1].note == "first"
    assert service.required_group_ids() == {FINANCE["id"]}


def test_save_audits_who_and_a_readable_diff(app: Flask, finance_document: dict[str, Any]) -> None:
    service.save(finance_document, actor="admin@example.com")
    _, document = service.current()
    document["rules"][1]["paths"] = ["/a"]
    service.save(document, actor="admin@example.com")
    document["rules"][1]["paths"] = ["/a", "/b"]
    document["rules"].append({"name": "Blocked", "host": "*", "paths": ["/admin/"], "action": "deny"})
    document["rules"].insert(0, document["rules"].pop(1))  # Finance reports first
    service.save(document, actor="boss@example.com", note="reorder")
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "policies.change")
                               .order_by(AuditEvent.id.desc())).first()
    assert event is not None and event.actor == "boss@example.com"
    assert event.target == "access policies version 3"
    changes = event.detail["changes"]
    assert "rule 'Finance reports': paths [/a] -> [/a, /b]" in changes
    assert "added rule 'Blocked' at 3" in changes
    assert "moved rule 'Finance reports' from 2 to 1" in changes
    assert not any("Health" in line for line in changes)


def test_diff_sentences() -> None:
    old = {"hosts": [{"host": "a.example.com", "default": "signed_in"}],
           "rules": [{"id": "r-1", "name": "One", "criteria": {"app_roles": ["Reader"]}},
                     {"id": "r-2", "name": "Two"}, {"id": "r-3", "name": "Three"}]}
    new = {"hosts": [{"host": "a.example.com", "default": "deny"}],
           "rules": [{"id": "r-3", "name": "Three"}, {"id": "r-1", "name": "Uno", "enabled": False},
                     {"id": "r-4", "name": "Four"}]}
    assert service.diff(old, new) == [
        "host a.example.com: default signed_in -> deny",
        "moved rule 'Three' from 3 to 1",
        "renamed rule 'One' to 'Uno'",
        "disabled rule 'Uno'",
        "rule 'Uno': app_roles [Reader] -> (none)",
        "added rule 'Four' at 3",
        "removed rule 'Two'",
    ]


@pytest.mark.parametrize(("rule", "path", "words"), [
    ({"name": "x", "paths": ["reports"]}, "rules[0].paths[0]", "start with /"),
    ({"name": "x", "networks": ["10.0.0.300/8"]}, "rules[0].networks[0]", "CIDR"),
    ({"name": "x", "host": "bad host"}, "rules[0].host", "host name"),
    ({"name": "x", "methods": ["FETCH"]}, "rules[0].methods[0]", "GET"),
    ({"name": "x", "colour": "red"}, "rules[0].colour", "unknown key"),
    ({"name": "x", "criteria": {"auth_context": "c100"}}, "rules[0].criteria.auth_context", "c1 to c99"),
    ({"name": "x", "criteria": {"max_auth_age_minutes": "15"}}, "rules[0].criteria.max_auth_age_minutes", "whole"),
    ({"name": "x", "criteria": {"groups_any": [{"name": "Finance"}]}}, "rules[0].criteria.groups_any[0].id",
     "object id"),
    ({"name": "x", "action": "public", "criteria": {"app_roles": ["R"]}}, "rules[0].criteria", "no criteria"),
    ({"name": "", "action": "allow"}, "rules[0].name", "needs a name"),
    ({"name": "x", "action": "maybe"}, "rules[0].action", "allow, deny or public"),
    ({"name": "x", "enabled": "yes"}, "rules[0].enabled", "true or false"),
])
def test_validate_names_the_field(rule: dict[str, Any], path: str, words: str) -> None:
    errors = service.validate({"hosts": [], "rules": [rule]})
    assert [e.path for e in errors] == [path]
    assert words in errors[0].message


def test_invalid_document_is_refused_and_nothing_saved(app: Flask) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        service.save({"rules": [{"name": "x", "paths": ["nope"]}], "extra": 1}, actor="a@example.com")
    assert {e.path for e in caught.value.errors} == {"extra", "rules[0].paths[0]"}
    assert service.current()[0] == 0


def test_group_shown_by_its_current_name_after_a_rename(app: Flask, finance_document: dict[str, Any]) -> None:
    service.save(finance_document, actor="admin@example.com")
    db.session.add(Group(name="local finance", source_group_id=FINANCE["id"], source_group_name="Finance Approvers EU"))
    db.session.commit()
    _, document = service.current()
    assert document["rules"][1]["criteria"]["groups_any"] == [{"id": FINANCE["id"], "name": "Finance Approvers EU"}]


def test_new_rule_ids_are_distinct() -> None:
    ids = {service.new_rule_id() for _ in range(200)}
    assert len(ids) == 200 and all(i.startswith("r-") for i in ids)


def test_host_claim_headers_are_validated_normalized_and_diffed() -> None:
    """Issue 14, point 7: a host's `headers` map names X- headers the gateway does not set itself, each once,
    each to a claim the session has."""
    bad = {"hosts": [{"host": "app.example.com", "headers": {
        "Authorization": "roles", "X-Auth-Request-Email": "email", "X-Team": "department", "X-Ok": "roles"}}],
        "rules": []}
    problems = {str(problem) for problem in service.validate(bad)}
    assert problems == {
        "hosts[0].headers.Authorization: a header name starts with X- and has only letters, digits and -",
        "hosts[0].headers.X-Auth-Request-Email: the gateway sets this header itself; choose another name",
        "hosts[0].headers.X-Team: the claim must be one of: roles, groups, email, name, user, tid, provider, "
        "acrs, auth_time"}
    assert service.validate({"hosts": [{"host": "a.example.com", "headers": ["X-Roles"]}], "rules": []})[0].path \
        == "hosts[0].headers"
    good = {"hosts": [{"host": "App.Example.com", "headers": {"X-Auth-Request-Roles": "roles"}},
                      {"host": "b.example.com"}], "rules": []}
    assert service.validate(good) == []
    assert service.normalize(good)["hosts"] == [
        {"host": "app.example.com", "default": "signed_in", "headers": {"X-Auth-Request-Roles": "roles"}},
        {"host": "b.example.com", "default": "signed_in"}]  # no headers key when none are chosen
    changed = {"hosts": [{"host": "app.example.com", "headers": {"X-Auth-Request-Roles": "roles",
                                                                 "X-Auth-Tenant": "tid"}},
                         {"host": "b.example.com", "headers": {"X-Mail": "email"}}], "rules": []}
    assert service.diff(good, changed) == [
        "host app.example.com: headers [X-Auth-Request-Roles: roles] -> [X-Auth-Request-Roles: roles, "
        "X-Auth-Tenant: tid]",
        "host b.example.com: headers (none) -> [X-Mail: email]"]
