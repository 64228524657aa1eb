"""policies.evaluate: first match, hosts, paths, methods, networks, each criterion's reason, deny rules, host
defaults, public paths. Pure: the compiled document, no database."""

from __future__ import annotations

import time
from typing import Any

import pytest

from policies.evaluate import Decision, RequestFacts, compile_document, normalize_path
from tests.policies.conftest import FINANCE, STAFF, identity

NOW = 1_800_000_000.0


def decide(document: dict[str, Any], url: str, who: dict[str, Any] | None, method: str = "GET",
           ip: str | None = "192.0.2.10") -> Decision:
    host, _, path = url.partition("/")
    return compile_document(document, 7).evaluate(RequestFacts(method, host, "/" + path, ip), who, NOW)


def rule(name: str, **fields: Any) -> dict[str, Any]:
    return {"id": "r-" + name.lower().replace(" ", "-"), "name": name, **fields}


def test_first_matching_rule_decides_and_allow_does_not_fall_through() -> None:
    doc = {"rules": [rule("Finance", paths=["/reports/"], criteria={"groups_any": [FINANCE]}),
                     rule("Everyone", paths=["/"])]}
    denied = decide(doc, "app.example.com/reports/q3", identity(groups=(STAFF["id"],)))
    assert (denied.outcome, denied.rule_name, denied.criterion) == ("denied", "Finance", "groups_any")
    assert denied.reason == "not in group Finance Approvers"
    assert denied.granting_groups == (FINANCE,)
    assert denied.policy_version == 7
    allowed = decide(doc, "app.example.com/reports/q3", identity(groups=(FINANCE["id"].upper(),)))
    assert (allowed.outcome, allowed.rule_id) == ("allowed", "r-finance")
    assert decide(doc, "app.example.com/other", identity()).rule_name == "Everyone"


@pytest.mark.parametrize(("pattern", "host", "matches"), [
    ("app.example.com", "app.example.com", True), ("app.example.com", "APP.example.com:8443", True),
    ("app.example.com", "other.example.com", False), ("*.example.com", "a.b.example.com", True),
    ("*.example.com", "example.com", False), ("*.example.com", "badexample.com", False), ("*", "any.host", True),
])
def test_host_patterns(pattern: str, host: str, matches: bool) -> None:
    doc = {"rules": [rule("R", host=pattern, action="deny")]}
    assert (decide(doc, host + "/x", identity()).outcome == "denied") is matches


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("/reports/", "/reports/q3", True), ("/reports/", "/reports", False), ("/reports", "/reports", True),
    ("/reports", "/reports/q3", True), ("/reports", "/reportsx", False), ("/api/*.json", "/api/a.json", True),
    ("/api/*.json", "/api/a/b.json", False), ("/api/**.json", "/api/a/b.json", True), ("/v?/x", "/v2/x", True),
    ("/admin/", "/public/../admin/users", True), ("/admin/", "/%61dmin/users", True), ("/admin/", "//admin/x", True),
    ("/reports/", "/reports/q3?x=1", True),
])
def test_path_prefix_and_glob(pattern: str, path: str, matches: bool) -> None:
    doc = {"rules": [rule("R", paths=[pattern], action="deny")]}
    assert (decide(doc, "h.example.com" + path, identity()).outcome == "denied") is matches


def test_normalize_path_keeps_trailing_slash() -> None:
    assert normalize_path("/a/./b/../c/") == "/a/c/"
    assert normalize_path("/../../etc") == "/etc"


def test_methods_and_networks() -> None:
    doc = {"rules": [rule("Writes", methods=["POST", "DELETE"], networks=["10.0.0.0/8", "2001:db8::/32"],
                          action="deny")]}
    assert decide(doc, "h.example.com/x", identity(), "POST", "10.1.2.3").outcome == "denied"
    assert decide(doc, "h.example.com/x", identity(), "post", "::ffff:10.1.2.3").outcome == "denied"
    assert decide(doc, "h.example.com/x", identity(), "POST", "2001:db8::1").outcome == "denied"
    assert decide(doc, "h.example.com/x", identity(), "GET", "10.1.2.3").outcome == "allowed"
    assert decide(doc, "h.example.com/x", identity(), "POST", "192.0.2.1").outcome == "allowed"
    assert decide(doc, "h.example.com/x", identity(), "POST", None).outcome == "allowed"
    reads = {"rules": [rule("Reads", methods=["GET"], action="deny")]}
    assert decide(reads, "h.example.com/x", identity(), "HEAD").outcome == "denied"  # HEAD is a GET
    assert decide(reads, "h.example.com/x", identity(), "OPTIONS").outcome == "allowed"


@pytest.mark.parametrize(("criteria", "who", "criterion", "reason"), [
    ({"groups_any": [FINANCE, STAFF]}, identity(), "groups_any",
     "not in any of the groups Finance Approvers, Staff"),
    ({"groups_all": [FINANCE, STAFF]}, identity(groups=(FINANCE["id"],)), "groups_all", "not in group Staff"),
    ({"app_roles": ["Reader"]}, identity(roles=("Writer",)), "app_roles", "needs app role Reader"),
    ({"emails": ["bob@example.com"]}, identity(), "emails", "ann@example.com is not on this rule's list of people"),
    ({"domains": ["contoso.com"]}, identity(), "domains", "e-mail domain example.com is not allowed here"),
    ({"tenants": ["tenant-2"]}, identity(), "tenants", "tenant tenant-1 is not allowed here"),
    ({"providers": ["google"]}, identity(), "providers", "signed in with entra; this path needs google"),
])
def test_each_criterion_denies_with_its_reason(criteria: dict[str, Any], who: dict[str, Any], criterion: str,
                                               reason: str) -> None:
    decision = decide({"rules": [rule("R", criteria=criteria)]}, "h.example.com/x", who)
    assert (decision.outcome, decision.criterion, decision.reason) == ("denied", criterion, reason)


def test_step_up_for_old_sign_in_and_missing_authentication_context() -> None:
    doc = {"rules": [rule("Fresh", paths=["/pay/"], criteria={"max_auth_age_minutes": 15, "auth_context": "c1"})]}
    old = decide(doc, "h.example.com/pay/x", identity(auth_time=int(NOW) - 3 * 3600 - 5))
    assert (old.outcome, old.criterion, old.max_age_seconds) == ("step_up", "max_auth_age_minutes", 900)
    assert old.reason == "signed in 3 h ago; this path needs 15 min"
    unknown = decide(doc, "h.example.com/pay/x", identity(auth_time=None))
    assert unknown.outcome == "step_up" and unknown.reason == "sign-in time unknown; this path needs 15 min"
    no_acr = decide(doc, "h.example.com/pay/x", identity(auth_time=int(NOW) - 60))
    assert (no_acr.outcome, no_acr.auth_context, no_acr.reason) == ("step_up", "c1",
                                                                   "needs authentication context c1")
    ok = decide(doc, "h.example.com/pay/x", identity(auth_time=int(NOW) - 60, acrs=["c1"]))
    assert ok.outcome == "allowed"


def test_hard_criteria_are_checked_before_step_up() -> None:
    doc = {"rules": [rule("R", criteria={"app_roles": ["Reader"], "auth_context": "c2"})]}
    assert decide(doc, "h.example.com/x", identity(acrs=[])).outcome == "denied"


def test_deny_rule_continues_when_its_criteria_do_not_hold() -> None:
    doc = {"rules": [rule("No contractors", criteria={"domains": ["contractors.example.com"]}, action="deny"),
                     rule("Staff only", criteria={"groups_any": [STAFF]})]}
    contractor = decide(doc, "h.example.com/x", identity("c@contractors.example.com", groups=(STAFF["id"],)))
    assert (contractor.outcome, contractor.criterion, contractor.reason) == ("denied", "deny_rule",
                                                                            "denied by rule No contractors")
    staff = decide(doc, "h.example.com/x", identity(groups=(STAFF["id"],)))
    assert (staff.outcome, staff.rule_name) == ("allowed", "Staff only")


def test_host_default_and_no_rule() -> None:
    doc = {"hosts": [{"host": "locked.example.com", "default": "deny"}, {"host": "*.example.com", "default": "deny"},
                     {"host": "open.example.com", "default": "signed_in"}],
           "rules": [rule("Open part", host="locked.example.com", paths=["/open/"])]}
    denied = decide(doc, "locked.example.com/x", identity())
    assert (denied.outcome, denied.criterion, denied.reason) == ("denied", "host_default",
                                                                "no rule allows this path on locked.example.com")
    assert decide(doc, "locked.example.com/open/x", identity()).outcome == "allowed"
    assert decide(doc, "open.example.com/x", identity()).outcome == "allowed"  # exact entry beats the wildcard
    assert decide(doc, "other.example.com/x", identity()).outcome == "denied"
    assert decide(doc, "elsewhere.org/x", identity()).outcome == "allowed"  # no entry: any signed-in user
    assert decide(doc, "elsewhere.org/x", None).outcome == "not_signed_in"
    assert decide({}, "elsewhere.org/x", identity()).outcome == "allowed"


def test_public_paths_need_no_sign_in_and_disabled_rules_are_skipped() -> None:
    doc = {"hosts": [{"host": "app.example.com", "default": "deny"}],
           "rules": [rule("Health", paths=["/healthz"], action="public"),
                     rule("Off", paths=["/off"], action="public", enabled=False)]}
    assert decide(doc, "app.example.com/healthz", None).outcome == "public"
    assert decide(doc, "app.example.com/healthz", identity()).outcome == "public"
    assert decide(doc, "app.example.com/off", None).outcome == "not_signed_in"
    assert decide(doc, "app.example.com/off", identity()).outcome == "denied"


def test_two_hundred_rules_decide_quickly_enough_to_count() -> None:
    rules = [rule(f"Rule {i}", host=f"app{i}.example.com", paths=[f"/p{i}/", "/api/*.json"],
                  criteria={"groups_any": [FINANCE]}) for i in range(200)]
    policy = compile_document({"rules": rules}, 1)
    who = identity(groups=(FINANCE["id"],))
    facts = RequestFacts("GET", "app199.example.com", "/p199/x", "10.0.0.1")
    assert policy.evaluate(facts, who, time.time()).rule_name == "Rule 199"


def test_the_first_segment_index_keeps_the_rules_order() -> None:
    doc = {"rules": [rule("Deny old api", paths=["/api/v1/"], action="deny"),
                     rule("Any glob", paths=["/*/health"], action="public"),
                     rule("Reports", paths=["/reports", "/api/*.json"], criteria={"app_roles": ["Reader"]}),
                     rule("Everything", action="deny"),
                     rule("Too late", paths=["/api/"])]}
    who = identity(roles=("Reader",))
    assert decide(doc, "h.example.com/api/v1/x.json", who).rule_name == "Deny old api"
    assert decide(doc, "h.example.com/api/health", who).rule_name == "Any glob"
    assert decide(doc, "h.example.com/api/x.json", who).rule_name == "Reports"
    assert decide(doc, "h.example.com/reports/2024", who).rule_name == "Reports"
    assert decide(doc, "h.example.com/api/x.txt", who).rule_name == "Everything"
    assert decide(doc, "h.example.com/", who).rule_name == "Everything"
    assert decide(doc, "h.example.com/files/a b", who).rule_name == "Everything"
    encoded = {"rules": [rule("Encoded", paths=["/files/a%20b"], action="deny")]}
    assert decide(encoded, "h.example.com/files/a%20b", who).outcome == "denied"


def test_the_trace_shows_each_rule_tried_and_agrees_with_the_decision() -> None:
    from policies.evaluate import TraceStep

    doc = {"hosts": [{"host": "h.example.com", "default": "deny"}],
           "rules": [rule("Other host", host="x.example.com"),
                     rule("Writes", methods=["POST"], action="deny"),
                     rule("Office", networks=["10.0.0.0/8"]),
                     rule("No contractors", criteria={"domains": ["contractors.example.com"]}, action="deny"),
                     rule("Finance", paths=["/reports/"], criteria={"groups_any": [FINANCE]}),
                     rule("Never reached", paths=["/reports/"])]}
    policy = compile_document(doc, 4)
    facts = RequestFacts("GET", "h.example.com", "/reports/q3", "192.0.2.1")
    trace: list[TraceStep] = []
    decision = policy.evaluate(facts, identity(), NOW, trace=trace)
    assert decision == policy.evaluate(facts, identity(), NOW)
    assert [(s.position, s.rule_name, s.result) for s in trace] == [
        (1, "Other host", "skipped"), (2, "Writes", "skipped"), (3, "Office", "skipped"),
        (4, "No contractors", "continued"), (5, "Finance", "denied")]
    assert trace[0].detail == "host h.example.com is not x.example.com"
    assert trace[1].detail == "method GET is not POST"
    assert trace[2].detail == "client address 192.0.2.1 is not in its networks"
    assert trace[3].detail == "deny rule whose criteria do not hold (e-mail domain example.com is not allowed here)"
    assert trace[4].detail == "not in group Finance Approvers"
    other: list[TraceStep] = []
    assert policy.evaluate(RequestFacts("GET", "h.example.com", "/x", None), identity(), NOW, trace=other).outcome \
        == "denied"
    assert other[-1] == TraceStep(0, "", "", "denied", "no rule allows this path on h.example.com")
    assert other[-2].detail == "path /x is not one of its paths"


def test_what_an_allowed_decision_depends_on_for_reuse() -> None:
    """`holds_for`: how long an allow stays an allow as time alone passes (the allowing rule's auth-age bound);
    `depends_on_address`: whether a rule that can match the host and path reads the client address."""
    doc = {"rules": [rule("Office", host="a.example.com", paths=["/office/"], networks=["10.0.0.0/8"]),
                     rule("Fresh", host="a.example.com", paths=["/payroll/"],
                          criteria={"max_auth_age_minutes": 15}),
                     rule("Anywhere", host="b.example.com", networks=["10.0.0.0/8"], action="deny"),
                     rule("Writes", host="a.example.com", paths=["/reports/r1/"], methods=["POST"],
                          networks=["10.0.0.0/8"], action="deny")]}
    policy = compile_document(doc, 7)
    fresh = identity(auth_time=int(NOW) - 600)
    payroll = RequestFacts("GET", "a.example.com", "/payroll/x", "192.0.2.10")
    decision = policy.evaluate(payroll, fresh, NOW)
    assert decision.outcome == "allowed" and policy.holds_for(decision, fresh, NOW) == 300
    assert policy.holds_for(decision, identity(auth_time=None), NOW) == 0  # unknown sign-in time: not at all
    other = policy.evaluate(RequestFacts("GET", "a.example.com", "/home", "192.0.2.10"), fresh, NOW)
    assert other.outcome == "allowed" and policy.holds_for(other, fresh, NOW) is None  # no rule: no time limit
    assert not policy.depends_on_address(payroll)  # the networks rule on this host cannot match /payroll/
    assert policy.depends_on_address(RequestFacts("GET", "a.example.com", "/office/1", None))
    assert policy.depends_on_address(RequestFacts("GET", "b.example.com", "/anything", None))  # every path
    assert not policy.depends_on_address(RequestFacts("GET", "c.example.com", "/office/1", None))
    assert policy.depends_on_address(RequestFacts("POST", "a.example.com", "/reports/r1/x", None))
    assert not policy.depends_on_address(RequestFacts("GET", "a.example.com", "/reports/r1/x", None))  # method
    assert not policy.depends_on_address(RequestFacts("POST", "a.example.com", "/reports/q3", None))  # path
