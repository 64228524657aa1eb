"""policies.decisions: only non-allowed decisions are kept, repeats within a minute once, old rows pruned, query
filters and pages."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from core.extensions import db
from core.models import utcnow
from policies import decisions
from policies.evaluate import Decision, RequestFacts
from policies.models import AccessDecision
from tests.policies.conftest import FINANCE, identity


def denied(rule_id: str = "r-fin", reason: str = "not in group Finance Approvers") -> Decision:
    return Decision("denied", rule_id, "Finance reports", "groups_any", reason, (FINANCE,), policy_version=3)


def test_record_keeps_non_allowed_once_per_minute(app: Flask) -> None:
    decisions.forget_recent()
    facts = RequestFacts("GET", "finance.example.com", "/reports/q3", "10.0.0.1")
    who = identity()
    assert decisions.record(Decision("allowed"), facts, who, "s1") is False
    assert decisions.record(denied(), facts, who, "s1") is True
    assert decisions.record(denied(), facts, who, "s1") is False  # the page's next asset
    assert decisions.record(denied(), facts, who, "s2") is True  # another session
    assert decisions.record(denied(), RequestFacts("GET", "finance.example.com", "/reports/q4", None), who, "s1")
    rows = db.session.scalars(db.select(AccessDecision).order_by(AccessDecision.id)).all()
    assert len(rows) == 3
    row = rows[0]
    assert (row.user_label, row.host, row.path, row.rule_name, row.outcome, row.reason, row.policy_version) == (
        "ann@example.com", "finance.example.com", "/reports/q3", "Finance reports", "denied",
        "not in group Finance Approvers", 3)
    assert row.granting_groups == [FINANCE]


def test_query_filters_and_pages(app: Flask) -> None:
    decisions.forget_recent()
    for index in range(7):
        decisions.record(denied(), RequestFacts("GET", "finance.example.com", f"/r/{index}", None),
                         identity("ann@example.com"), "s1")
    decisions.record(Decision("step_up", "r-pay", "Payments", "auth_context", "needs authentication context c1",
                              auth_context="c1"), RequestFacts("POST", "pay.example.com", "/pay", None),
                     identity("bob@example.com"), "s2")
    page = decisions.query({"user": "ANN"}, page=2, per_page=5)
    assert (page.total, page.pages, page.page, len(page.items)) == (7, 2, 2, 2)
    assert decisions.query({"outcome": "step_up"}).items[0].reason == "needs authentication context c1"
    assert decisions.query({"host": "pay.example.com"}).total == 1
    assert decisions.query({"rule": "finance"}).total == 7
    assert decisions.query({"rule": "r-pay"}).total == 1
    assert decisions.query({"user": "%"}).total == 0


def test_prune_removes_rows_past_the_retention(app: Flask) -> None:
    app.config["ACCESS_DECISIONS_RETENTION_DAYS"] = 10
    db.session.add_all([AccessDecision(outcome="denied", at=utcnow() - timedelta(days=11)),
                        AccessDecision(outcome="denied", at=utcnow() - timedelta(days=9))])
    db.session.commit()
    assert decisions.prune() == 1
    assert db.session.scalar(db.select(db.func.count()).select_from(AccessDecision)) == 1
