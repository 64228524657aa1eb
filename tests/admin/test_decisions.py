"""Administration > Access decisions: the decisions that were not allowed, newest first, filtered by user, host,
rule and outcome, paged, each with its rule and reason in words; Administrators only."""

from __future__ import annotations

import re
from datetime import timedelta

from flask.testing import FlaskClient

from core.extensions import db
from core.models import utcnow
from policies.models import AccessDecision
from tests.conftest import make_user, sign_in
from tests.o365_ops_helpers import page_text

FINANCE = {"id": "0b4f5a3e-0000-4000-8000-00000000f1a0", "name": "Finance Approvers"}


def _row(minutes_ago: int, user: str, host: str, outcome: str, rule: str, reason: str, **extra: object) -> None:
    db.session.add(AccessDecision(at=utcnow() - timedelta(minutes=minutes_ago), user_label=user, host=host,
                                  path=extra.pop("path", "/reports/q3"), method="GET",
                                  rule_id=f"r-{rule[:4].lower()}" if rule else "",
                                  rule_name=rule, outcome=outcome, criterion="groups_any", reason=reason,
                                  session_hash="0123456789ab", policy_version=4, **extra))


def _shown(response) -> list[str]:  # type: ignore[no-untyped-def]
    return re.findall(r'<tr class="decision">.*?</tr>', page_text(response))


def test_decisions_filters_and_pages(admin_client: FlaskClient) -> None:
    assert "No decisions." in page_text(admin_client.get("/admin/decisions"))
    _row(1, "ann@example.com", "finance.example.com", "denied", "Finance reports",
         "not in group Finance Approvers", granting_groups=[FINANCE])
    _row(2, "bob@example.com", "finance.example.com", "step_up", "Finance reports",
         "signed in 3 h ago; this path needs 15 min")
    _row(3, "", "wiki.example.com", "not_signed_in", "", "sign-in needed", path="/")
    for n in range(55):
        _row(10 + n, f"user{n}@example.org", "bulk.example.com", "denied", "Bulk", "needs app role Reader")
    db.session.commit()

    page = page_text(admin_client.get("/admin/decisions"))
    rows = _shown(admin_client.get("/admin/decisions"))
    assert len(rows) == 50 and "58 in all" in page
    assert "ann@example.com" in rows[0] and "GET finance.example.com/reports/q3" in rows[0]
    assert "not in group Finance Approvers" in rows[0] and "Would be let in as a member of Finance Approvers" in rows[0]
    assert "Finance reports" in rows[0] and "Denied" in rows[0] and "version 4" in rows[0]
    assert "Step-up asked" in rows[1] and "signed in 3 h ago; this path needs 15 min" in rows[1]
    assert "not signed in" in rows[2] and "host default" in rows[2]
    assert len(_shown(admin_client.get("/admin/decisions?page=2"))) == 8

    def only(**query: str) -> list[str]:
        return _shown(admin_client.get("/admin/decisions", query_string=query))

    assert [r for r in only(user="ann") if "ann@example.com" in r] == only(user="ann") and len(only(user="ann")) == 1
    assert len(only(host="finance.example.com")) == 2
    assert len(only(rule="Finance")) == 2 and len(only(rule="r-bulk")) == 50
    assert len(only(outcome="step_up")) == 1 and "bob@example.com" in only(outcome="step_up")[0]
    assert len(only(outcome="not_signed_in", host="wiki.example.com")) == 1
    assert len(only(host="finance.example.com", outcome="denied", user="bob")) == 0
    assert "No decisions match these filters." in page_text(admin_client.get("/admin/decisions?user=nobody"))
    filtered = page_text(admin_client.get("/admin/decisions?host=bulk.example.com"))
    assert 'href="/admin/decisions?page=2&host=bulk.example.com"' in filtered  # the pager keeps the filters
    assert len(only(outcome="bogus")) == 50  # an unknown outcome is no filter
    assert admin_client.get("/admin/decisions?page=x").status_code == 422


def test_decisions_need_an_administrator(client: FlaskClient) -> None:
    make_user("manager@example.com", "manager-password-1", "Manage datasources")
    assert sign_in(client, "manager@example.com", "manager-password-1").status_code == 302
    assert client.get("/admin/decisions").status_code == 403
    assert client.get("/admin/access-policies").status_code == 403
