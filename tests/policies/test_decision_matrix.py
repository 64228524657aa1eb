"""Issue 14's decision matrix: routes x people x claims, each with the decision and the reason in words, through
the evaluator /auth/verify uses (compiled once; pure, no database)."""

from __future__ import annotations

from typing import Any

import pytest

from policies.evaluate import RequestFacts, compile_document
from tests.policies.conftest import FINANCE, STAFF, identity

NOW = 1_800_000_000
AUDITORS = {"id": "0b4f5a3e-0000-4000-8000-0000000a0d17", "name": "Auditors"}
POLICY = compile_document({
    "hosts": [{"host": "hr.example.com", "default": "deny"}, {"host": "*.internal.example.com", "default": "deny"}],
    "rules": [
        {"id": "r-health", "name": "Health", "host": "*", "paths": ["/healthz", "/static/**"], "action": "public"},
        {"id": "r-block", "name": "No contractors on admin", "host": "*", "paths": ["/admin/"],
         "action": "deny", "criteria": {"domains": ["contractors.example.com"]}},
        {"id": "r-admin", "name": "Admin", "host": "*", "paths": ["/admin/"], "criteria": {"app_roles": ["Admin"]}},
        {"id": "r-fin-read", "name": "Finance reports", "host": "finance.example.com", "paths": ["/reports/"],
         "methods": ["GET"], "criteria": {"groups_any": [FINANCE, AUDITORS]}},
        {"id": "r-fin-write", "name": "Finance writes", "host": "finance.example.com", "paths": ["/reports/"],
         "methods": ["POST", "PUT", "DELETE"], "criteria": {"groups_all": [FINANCE, STAFF],
                                                            "max_auth_age_minutes": 15}},
        {"id": "r-pay", "name": "Payments", "host": "finance.example.com", "paths": ["/pay/*/confirm"],
         "criteria": {"auth_context": "c1", "groups_any": [FINANCE]}},
        {"id": "r-office", "name": "Office network", "host": "*.internal.example.com", "networks": ["10.0.0.0/8"],
         "criteria": {"tenants": ["tenant-1"]}},
        {"id": "r-hr", "name": "HR people", "host": "hr.example.com", "paths": ["/people/"],
         "criteria": {"emails": ["hr@example.com", "boss@example.com"]}},
        {"id": "r-hr-api", "name": "HR API", "host": "hr.example.com", "paths": ["/api/*.json"],
         "criteria": {"providers": ["entra"], "domains": ["example.com"]}},
        {"id": "r-old", "name": "Retired", "host": "*", "paths": ["/old/"], "enabled": False, "action": "public"},
    ]}, 12)

ANN = identity("ann@example.com", groups=(FINANCE["id"],), auth_time=NOW - 60)
ANN_STAFF = identity("ann@example.com", groups=(FINANCE["id"], STAFF["id"]), auth_time=NOW - 60)
ANN_OLD = identity("ann@example.com", groups=(FINANCE["id"], STAFF["id"]), auth_time=NOW - 2 * 3600)
ANN_C1 = identity("ann@example.com", groups=(FINANCE["id"],), acrs=["c1"], auth_time=NOW - 60)
BOB = identity("bob@example.com", auth_time=NOW - 60)
AUDITOR = identity("audrey@example.com", groups=(AUDITORS["id"],), auth_time=NOW - 60)
ADMIN = identity("root@example.com", roles=("Admin",), auth_time=NOW - 60)
CONTRACTOR = identity("cal@contractors.example.com", roles=("Admin",), auth_time=NOW - 60)
HR = identity("hr@example.com", auth_time=NOW - 60)
GUEST = identity("gus@example.com", provider="google", auth_time=NOW - 60)
OTHER_TENANT = identity("tia@example.com", tid="tenant-9", auth_time=NOW - 60)
NOBODY = None

CASES: list[tuple[str, str, Any, str | None, str, str, str]] = [
    # (method, url, person, client ip, outcome, rule, reason)
    ("GET", "app.example.com/healthz", NOBODY, None, "public", "Health", "public path"),
    ("GET", "app.example.com/static/css/site.css", NOBODY, None, "public", "Health", "public path"),
    ("GET", "app.example.com/healthz", BOB, None, "public", "Health", "public path"),
    ("GET", "app.example.com/old/page", NOBODY, None, "not_signed_in", "", "not signed in"),
    ("GET", "app.example.com/old/page", BOB, None, "allowed", "", ""),
    ("GET", "app.example.com/", NOBODY, None, "not_signed_in", "", "not signed in"),
    ("GET", "app.example.com/", BOB, None, "allowed", "", ""),
    ("GET", "app.example.com/admin/users", ADMIN, None, "allowed", "Admin", ""),
    ("GET", "app.example.com/admin/users", BOB, None, "denied", "Admin", "needs app role Admin"),
    ("GET", "app.example.com/admin/users", CONTRACTOR, None, "denied", "No contractors on admin",
     "denied by rule No contractors on admin"),
    ("GET", "app.example.com/admin/users", NOBODY, None, "not_signed_in", "No contractors on admin", "not signed in"),
    ("GET", "app.example.com/admin", ADMIN, None, "allowed", "", ""),  # /admin/ is what is under /admin/
    ("GET", "app.example.com/x/../admin/users", BOB, None, "denied", "Admin", "needs app role Admin"),
    ("GET", "app.example.com/%61dmin/users", BOB, None, "denied", "Admin", "needs app role Admin"),
    ("GET", "finance.example.com/reports/q3", ANN, None, "allowed", "Finance reports", ""),
    ("HEAD", "finance.example.com/reports/q3", ANN, None, "allowed", "Finance reports", ""),
    ("GET", "finance.example.com/reports/q3", AUDITOR, None, "allowed", "Finance reports", ""),
    ("GET", "finance.example.com/reports/q3", BOB, None, "denied", "Finance reports",
     "not in any of the groups Finance Approvers, Auditors"),
    ("GET", "FINANCE.example.com:443/reports/q3", BOB, None, "denied", "Finance reports",
     "not in any of the groups Finance Approvers, Auditors"),
    ("GET", "finance.example.com/reports/q3", NOBODY, None, "not_signed_in", "Finance reports", "not signed in"),
    ("POST", "finance.example.com/reports/q3", ANN_STAFF, None, "allowed", "Finance writes", ""),
    ("POST", "finance.example.com/reports/q3", ANN, None, "denied", "Finance writes", "not in group Staff"),
    ("DELETE", "finance.example.com/reports/q3", BOB, None, "denied", "Finance writes",
     "not in group Finance Approvers, Staff"),
    ("PUT", "finance.example.com/reports/q3", ANN_OLD, None, "step_up", "Finance writes",
     "signed in 2 h ago; this path needs 15 min"),
    ("PATCH", "finance.example.com/reports/q3", ANN, None, "allowed", "", ""),  # no rule for PATCH
    ("GET", "finance.example.com/pay/42/confirm", ANN, None, "step_up", "Payments",
     "needs authentication context c1"),
    ("GET", "finance.example.com/pay/42/confirm", ANN_C1, None, "allowed", "Payments", ""),
    ("GET", "finance.example.com/pay/42/confirm", BOB, None, "denied", "Payments", "not in group Finance Approvers"),
    ("GET", "finance.example.com/pay/42/43/confirm", BOB, None, "allowed", "", ""),  # * is one segment
    ("GET", "finance.example.com/pay/42/confirm", NOBODY, None, "not_signed_in", "Payments", "not signed in"),
    ("GET", "wiki.internal.example.com/page", BOB, "10.1.2.3", "allowed", "Office network", ""),
    ("GET", "wiki.internal.example.com/page", BOB, "192.0.2.7", "denied", "",
     "no rule allows this path on wiki.internal.example.com"),
    ("GET", "wiki.internal.example.com/page", BOB, None, "denied", "",
     "no rule allows this path on wiki.internal.example.com"),
    ("GET", "wiki.internal.example.com/page", OTHER_TENANT, "10.1.2.3", "denied", "Office network",
     "tenant tenant-9 is not allowed here"),
    ("GET", "wiki.internal.example.com/healthz", NOBODY, "192.0.2.7", "public", "Health", "public path"),
    ("GET", "internal.example.com/page", BOB, "192.0.2.7", "allowed", "", ""),  # *.x does not cover x itself
    ("GET", "hr.example.com/people/42", HR, None, "allowed", "HR people", ""),
    ("GET", "hr.example.com/people/42", BOB, None, "denied", "HR people",
     "bob@example.com is not on this rule's list of people"),
    ("GET", "hr.example.com/api/staff.json", BOB, None, "allowed", "HR API", ""),
    ("GET", "hr.example.com/api/staff.json", GUEST, None, "denied", "HR API",
     "signed in with google; this path needs entra"),
    ("GET", "hr.example.com/api/x/staff.json", BOB, None, "denied", "", "no rule allows this path on hr.example.com"),
    ("GET", "hr.example.com/api/staff.json", CONTRACTOR, None, "denied", "HR API",
     "e-mail domain contractors.example.com is not allowed here"),
    ("GET", "hr.example.com/", BOB, None, "denied", "", "no rule allows this path on hr.example.com"),
    ("GET", "hr.example.com/", NOBODY, None, "not_signed_in", "", "not signed in"),
]


@pytest.mark.parametrize(("method", "url", "person", "ip", "outcome", "rule", "reason"), CASES,
                         ids=[f"{c[0]} {c[1]} {c[2]['email'] if c[2] else 'anonymous'} {c[3] or ''}" for c in CASES])
def test_decision_matrix(method: str, url: str, person: dict[str, Any] | None, ip: str | None, outcome: str,
                         rule: str, reason: str) -> None:
    host, _, path = url.partition("/")
    decision = POLICY.evaluate(RequestFacts(method, host, "/" + path, ip), person, NOW)
    assert (decision.outcome, decision.rule_name, decision.reason) == (outcome, rule, reason)
    assert decision.policy_version == 12


def test_the_matrix_is_large_enough() -> None:
    assert len(CASES) >= 40
