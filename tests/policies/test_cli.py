"""`flask policies export|import`: the same document round trip, problems at their line numbers with nothing
changed and exit status 1, --dry-run saves nothing, groups given by name resolved through the imported groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from sqlalchemy import select

from core.extensions import db
from core.models import AuditEvent, Group
from policies import service
from policies.models import PolicyVersion
from tests.policies.conftest import FINANCE

GOOD = """\
hosts:
  - host: finance.example.com
    default: deny
rules:
  - name: Health
    host: "*"
    paths: [/healthz]
    action: public
  - name: Finance reports
    host: finance.example.com
    paths: [/reports/, /api/*.json]
    methods: [get, POST]
    networks: [10.0.0.0/8]
    criteria:
      groups_any: [Finance Approvers]
      max_auth_age_minutes: 15
      auth_context: c1
"""


def run(app: Flask, *args: str, stdin: str | None = None) -> Any:
    return app.test_cli_runner().invoke(args=["policies", *args], input=stdin)


@pytest.fixture
def finance_group(app: Flask) -> Group:
    group = Group(name="finance", source_group_id=FINANCE["id"], source_group_name=FINANCE["name"])
    db.session.add(group)
    db.session.commit()
    return group


def test_import_then_export_round_trips_the_same_document(app: Flask, finance_group: Group, tmp_path: Path) -> None:
    source = tmp_path / "policies.yaml"
    source.write_text(GOOD)
    imported = run(app, "import", str(source))
    assert imported.exit_code == 0, imported.stderr
    assert "Saved version 1 (2 rules)." in imported.output
    number, document = service.current()
    rule = document["rules"][1]
    assert rule["methods"] == ["GET", "POST"] and rule["criteria"]["groups_any"] == [FINANCE]
    exported = run(app, "export")
    assert exported.exit_code == 0 and exported.stdout.startswith("# Access policies, version 1")
    assert yaml.safe_load(exported.stdout) == document
    again = tmp_path / "again.yaml"
    again.write_text(exported.stdout)
    assert "No changes to version 1" in run(app, "import", str(again)).output
    changed = exported.stdout.replace("  - /reports/\n", "  - /reports/\n  - /ledger/\n")
    assert changed != exported.stdout
    second = run(app, "import", "-", "--note", "ledger too", stdin=changed)
    assert second.exit_code == 0, second.stderr
    assert "rule 'Finance reports': paths [/reports/, /api/*.json] -> " \
                                      "[/reports/, /ledger/, /api/*.json]" in second.output
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "policies.change")
                               .order_by(AuditEvent.id.desc())).first()
    assert event is not None and event.actor == "cli" and event.detail["note"] == "ledger too"
    assert [v.number for v in service.versions()] == [2, 1]
    assert yaml.safe_load(run(app, "export", "--version", "1").stdout) == document


@pytest.mark.parametrize(("change", "line", "words"), [
    (("paths: [/reports/, /api/*.json]", "paths: [/reports/, /api/*.json"), 12, "YAML syntax"),
    (("    action: public\n", "    action: public\n    colour: red\n"), 9, "unknown key 'colour'"),
    (("networks: [10.0.0.0/8]", "networks: [10.0.0.300/8]"), 13, "CIDR"),
    (("host: finance.example.com\n    paths", "host: finance example\n    paths"), 10, "host name"),
    (("paths: [/reports/,", "paths: [reports/,"), 11, "start with /"),
    (("paths: [/reports/, /api/*.json]", "paths: [/reports/, /api/***.json]"), 11, "not ***"),
    (("[Finance Approvers]", "[Finance Approvers, Nobody]"), 15, "unknown group 'Nobody'"),
    (("max_auth_age_minutes: 15", "max_auth_age_minutes: soon"), 16, "whole number of minutes"),
    (("methods: [get, POST]", "methods: get"), 12, "must be a list"),
    (("auth_context: c1", "auth_context: c1\n      auth_context: c2"), 18, "given twice"),
    (("    default: deny", "    default: 2026-12-04"), 3, "not date"),
    (("    paths: [/healthz]", "    paths: &p [/healthz]\n    methods: *p"), 8, "aliases"),
    (("    default: deny\n", "    default: deny\n    headers:\n      X-Auth-Request-Roles: roles\n"
      "      X-Team: department\n"), 6, "hosts[0].headers.X-Team: the claim must be one of"),
])
def test_a_bad_file_is_refused_at_its_line_and_changes_nothing(app: Flask, finance_group: Group, tmp_path: Path,
                                                                change: tuple[str, str], line: int, words: str) -> None:
    assert change[0] in GOOD
    source = tmp_path / "bad.yaml"
    source.write_text(GOOD.replace(change[0], change[1]))
    result = run(app, "import", str(source))
    assert result.exit_code == 1
    assert f"{source}:{line}: " in result.stderr and words in result.stderr, result.stderr
    assert "nothing was changed" in result.stderr
    assert db.session.scalar(select(db.func.count()).select_from(PolicyVersion)) == 0


def test_several_problems_are_all_reported(app: Flask, tmp_path: Path) -> None:
    source = tmp_path / "bad.yaml"
    source.write_text(GOOD.replace("action: public", "action: maybe").replace("10.0.0.0/8", "ten"))
    result = run(app, "import", str(source))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert any(":8: rules[0].action" in entry for entry in lines)
    assert any(":13: rules[1].networks[0]" in entry for entry in lines)
    assert any(":15: rules[1].criteria.groups_any[0]: unknown group 'Finance Approvers'" in entry for entry in lines)


def test_dry_run_shows_the_changes_and_saves_nothing(app: Flask, finance_group: Group, tmp_path: Path) -> None:
    source = tmp_path / "policies.yaml"
    source.write_text(GOOD)
    result = run(app, "import", str(source), "--dry-run")
    assert result.exit_code == 0
    assert "added rule 'Finance reports' at 2" in result.output and "nothing was saved" in result.output
    assert db.session.scalar(select(db.func.count()).select_from(PolicyVersion)) == 0
    assert db.session.scalar(select(db.func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "policies.change")) == 0


def test_export_shows_a_renamed_group_by_its_new_name(app: Flask, finance_group: Group) -> None:
    service.save({"rules": [{"name": "F", "criteria": {"groups_any": [FINANCE]}}]}, actor="a@example.com")
    finance_group.source_group_name = "Finance Approvers (EU)"
    db.session.commit()
    exported = yaml.safe_load(run(app, "export").stdout)
    assert exported["rules"][0]["criteria"]["groups_any"] == [{"id": FINANCE["id"], "name": "Finance Approvers (EU)"}]


def test_check_is_what_if_with_the_rules_tried(app: Flask, finance_group: Group) -> None:
    from core.models import User

    service.save({"rules": [
        {"name": "Health", "paths": ["/healthz"], "action": "public"},
        {"name": "Finance reports", "host": "finance.example.com", "paths": ["/reports/"],
         "criteria": {"groups_any": [FINANCE], "auth_context": "c1"}}]}, actor="a@example.com")
    user = User(email="ann@example.com", tenant_id="t-1", object_id="o-1")
    db.session.add(user)
    db.session.commit()
    url = "https://finance.example.com/reports/q3"
    denied = run(app, "check", "--user", "ann@example.com", "--url", url)
    assert denied.exit_code == 0, denied.output
    assert "  1. Health: skipped, path /reports/q3 is not one of its paths" in denied.stdout
    assert "  2. Finance reports: denied, not in group Finance Approvers" in denied.stdout
    assert "Decision: denied by rule 'Finance reports': not in group Finance Approvers" in denied.stdout
    assert f"Groups that would grant access: Finance Approvers ({FINANCE['id']})" in denied.stdout
    finance_group.members.append(user)  # an imported member of the Office 365 group
    db.session.commit()
    step_up = run(app, "check", "--user", "ann@example.com", "--url", url).stdout
    assert "Decision: step_up by rule 'Finance reports': needs authentication context c1" in step_up
    allowed = run(app, "check", "--user", "ann@example.com", "--url", url, "--acr", "c1").stdout
    assert "Decision: allowed by rule 'Finance reports'" in allowed
    anonymous = run(app, "check", "--url", "https://any.example.com/healthz").stdout
    assert "Decision: public by rule 'Health': public path" in anonymous
    assert run(app, "check", "--user", "nobody@example.com", "--url", url).exit_code == 1
