"""/auth/verify decides with the access policies (issue 14, point 3): the original method and URL from nginx
(X-Original-Method/X-Original-URL) and Traefik (X-Forwarded-Method/Proto/Host/Uri), the client address ProxyFix
trusts, public paths, step-up, recorded denials, the legacy query parameters unchanged, and a WSGI fast path that
never serves an allow from an older version or another rule."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.extensions import db
from core.models import Group, User
from policies import decisions, evaluate, service
from policies.models import AccessDecision, PolicyVersion
from tests.conftest import USER_EMAIL, USER_PASSWORD, sign_in

FINANCE = {"id": "0b4f5a3e-0000-4000-8000-00000000f1a0", "name": "Finance Approvers"}
DOCUMENT: dict[str, Any] = {
    "hosts": [{"host": "locked.example.com", "default": "deny"}],
    "rules": [
        {"id": "r-health", "name": "Health", "host": "*", "paths": ["/healthz"], "action": "public"},
        {"id": "r-office", "name": "Office only", "host": "finance.example.com", "paths": ["/admin/"],
         "networks": ["10.0.0.0/8"], "action": "allow"},
        {"id": "r-fin", "name": "Finance reports", "host": "finance.example.com", "paths": ["/reports/"],
         "methods": ["GET"], "criteria": {"groups_any": [FINANCE]}},
        {"id": "r-writes", "name": "No writes", "host": "finance.example.com", "methods": ["POST", "DELETE"],
         "action": "deny"},
        {"id": "r-fresh", "name": "Fresh sign-in", "host": "*.example.com", "paths": ["/payroll/"],
         "criteria": {"max_auth_age_minutes": 15}},
    ],
}


def nginx(method: str, url: str) -> dict[str, str]:
    return {"X-Original-Method": method, "X-Original-URL": url}


def traefik(method: str, url: str) -> dict[str, str]:
    parts = urlsplit(url)
    return {"X-Forwarded-Method": method, "X-Forwarded-Proto": parts.scheme, "X-Forwarded-Host": parts.netloc,
            "X-Forwarded-Uri": parts.path + (f"?{parts.query}" if parts.query else "")}


STYLES = {"nginx": nginx, "traefik": traefik}


@pytest.fixture
def app_env() -> dict[str, str]:
    return {"ALLOWED_REDIRECT_DOMAINS": ".example.com", "PUBLIC_BASE_URL": "https://sso.example.com",
            "TRUSTED_PROXY_HOPS": "1"}


@pytest.fixture
def policy(app: Flask) -> int:
    decisions.forget_recent()
    return service.save(DOCUMENT, actor="admin@example.com")


@pytest.fixture
def signed_in(client: FlaskClient, plain_user: User, policy: int) -> FlaskClient:
    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    return client


def set_identity(client: FlaskClient, **changes: Any) -> None:
    with client.session_transaction() as session:
        session["identity"] = {**session["identity"], **changes}


def fast(response: Any) -> bool:
    """Answered by the WSGI fast path (the Flask view adds the security headers)."""
    return "Content-Security-Policy" not in response.headers


@pytest.mark.parametrize("style", ["nginx", "traefik"])
def test_rules_decide_the_original_method_and_url(signed_in: FlaskClient, style: str) -> None:
    headers = STYLES[style]
    reports = headers("GET", "https://finance.example.com/reports/q3?x=1")
    denied = signed_in.get("/auth/verify", headers=reports)
    assert denied.status_code == 403
    assert denied.get_json() == {"error": {"code": "forbidden", "message": "not in group Finance Approvers",
                                           "rule": "Finance reports"}}
    set_identity(signed_in, groups=[FINANCE["id"]])
    for _ in ("view", "fast path"):
        allowed = signed_in.get("/auth/verify", headers=reports)
        assert allowed.status_code == 200 and allowed.headers["X-Auth-Request-Email"] == USER_EMAIL
    assert fast(allowed)
    post = signed_in.get("/auth/verify", headers=headers("POST", "https://finance.example.com/reports/q3"))
    assert post.status_code == 403 and post.get_json()["error"]["rule"] == "No writes"  # GET-only rule skipped
    assert post.get_json()["error"]["message"] == "denied by rule No writes"
    other = signed_in.get("/auth/verify", headers=headers("GET", "https://finance.example.com/home"))
    assert other.status_code == 200  # no rule: any signed-in user
    locked = signed_in.get("/auth/verify", headers=headers("GET", "https://locked.example.com:8443/x"))
    assert locked.status_code == 403 and locked.get_json()["error"]["message"] == \
        "no rule allows this path on locked.example.com"
    through = signed_in.get("/auth/verify", headers=headers("GET", "https://finance.example.com/x/../%72eports/a"))
    assert through.status_code == 200  # the group allows the normalized path
    set_identity(signed_in, groups=[])
    sneaky = signed_in.get("/auth/verify", headers=headers("GET", "https://finance.example.com/x/../%72eports/a"))
    assert sneaky.status_code == 403  # the path is normalized before matching


@pytest.mark.parametrize("style", ["nginx", "traefik"])
def test_public_paths_answer_without_sign_in(client: FlaskClient, policy: int, style: str) -> None:
    for _ in ("view", "fast path"):
        response = client.get("/auth/verify", headers=STYLES[style]("GET", "https://any.example.com/healthz"))
        assert response.status_code == 200 and "X-Auth-Request-User" not in response.headers
    assert fast(response)
    private = client.get("/auth/verify", headers=STYLES[style]("GET", "https://any.example.com/healthz2"))
    assert private.status_code == 401
    redirected = client.get("/auth/verify?redirect=1", headers=STYLES[style]("GET", "https://a.example.com/p"))
    assert redirected.status_code == 302
    assert parse_qs(urlsplit(redirected.headers["Location"]).query)["rd"] == ["https://a.example.com/p"]


def test_networks_use_the_client_address_the_trusted_proxy_gives(signed_in: FlaskClient) -> None:
    url = nginx("GET", "https://finance.example.com/admin/users")
    inside = signed_in.get("/auth/verify", headers={**url, "X-Forwarded-For": "10.20.30.40"})
    assert inside.status_code == 200
    # Outside the office network the rule does not match; nothing else does: any signed-in user.
    outside = signed_in.get("/auth/verify", headers={**url, "X-Forwarded-For": "198.51.100.7"})
    assert outside.status_code == 200
    spoofed = signed_in.get("/auth/verify", headers={**url, "X-Forwarded-For": "10.0.0.1, 198.51.100.7"})
    assert spoofed.status_code == 200  # one trusted hop: the last address counts, not the one the client wrote


def test_networks_rule_that_denies_outside(app: Flask, client: FlaskClient, plain_user: User) -> None:
    service.save({"rules": [
        {"name": "Office", "host": "*", "paths": ["/admin/"], "networks": ["10.0.0.0/8"], "action": "allow"},
        {"name": "Admin elsewhere", "host": "*", "paths": ["/admin/"], "action": "deny"}]}, actor="t")
    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    url = nginx("GET", "https://a.example.com/admin/")
    assert client.get("/auth/verify", headers={**url, "X-Forwarded-For": "10.9.9.9"}).status_code == 200
    outside = client.get("/auth/verify", headers={**url, "X-Forwarded-For": "10.0.0.1, 198.51.100.7"})
    assert outside.status_code == 403 and outside.get_json()["error"]["rule"] == "Admin elsewhere"


def test_step_up_redirects_in_redirect_mode_else_401(signed_in: FlaskClient) -> None:
    import time

    set_identity(signed_in, auth_time=int(time.time()) - 3 * 3600)
    url = "https://hr.example.com/payroll/may"
    plain = signed_in.get("/auth/verify", headers=nginx("GET", url))
    assert plain.status_code == 401
    assert plain.get_json()["error"]["message"] == "signed in 3 h ago; this path needs 15 min"
    redirected = signed_in.get("/auth/verify?redirect=1", headers=nginx("GET", url))
    assert redirected.status_code == 302
    location = urlsplit(redirected.headers["Location"])
    assert (location.netloc, location.path) == ("sso.example.com", "/auth/start")
    assert parse_qs(location.query)["rd"] == [url]
    set_identity(signed_in, auth_time=int(time.time()) - 60)
    assert signed_in.get("/auth/verify", headers=nginx("GET", url)).status_code == 200


def test_denials_are_recorded_once_without_secrets(app: Flask, signed_in: FlaskClient, plain_user: User) -> None:
    url = nginx("GET", "https://finance.example.com/reports/q3?token=s3cret")
    for _ in range(3):
        assert signed_in.get("/auth/verify", headers=url).status_code == 403
    rows = db.session.scalars(select(AccessDecision)).all()
    assert len(rows) == 1  # de-duplicated per session, rule and path
    row = rows[0]
    assert (row.outcome, row.rule_id, row.rule_name, row.criterion) == ("denied", "r-fin", "Finance reports",
                                                                        "groups_any")
    assert (row.host, row.path, row.method, row.user_id) == ("finance.example.com", "/reports/q3", "GET",
                                                             plain_user.id)
    assert row.reason == "not in group Finance Approvers" and row.granting_groups == [FINANCE]
    assert row.user_label == USER_EMAIL and len(row.session_hash) == 12
    cookie = signed_in.get_cookie("gw_session")
    assert cookie is not None
    stored = " ".join(str(getattr(row, c.name)) for c in AccessDecision.__table__.columns)
    assert cookie.value not in stored and "s3cret" not in stored
    assert signed_in.get("/auth/verify", headers=nginx("GET", "https://finance.example.com/reports/q4"))\
        .status_code == 403
    assert db.session.scalar(select(db.func.count()).select_from(AccessDecision)) == 2  # another path


def test_a_denial_in_redirect_mode_goes_to_the_denied_page(signed_in: FlaskClient) -> None:
    url = "https://finance.example.com/reports/q3"
    redirected = signed_in.get("/auth/verify?redirect=1", headers=traefik("GET", url))
    assert redirected.status_code == 302
    location = urlsplit(redirected.headers["Location"])
    assert (location.netloc, location.path, parse_qs(location.query)["rd"]) == ("sso.example.com", "/auth/denied",
                                                                                [url])
    page = signed_in.get(f"{location.path}?{location.query}")
    assert "not in group Finance Approvers" in page.get_data(as_text=True)
    assert signed_in.get("/auth/verify", headers=traefik("GET", url)).status_code == 403  # nginx mode: the 403


def test_legacy_query_parameters_keep_their_meaning(signed_in: FlaskClient) -> None:
    url = nginx("GET", "https://finance.example.com/reports/q3")
    assert signed_in.get("/auth/verify", headers=url).status_code == 403  # the rules
    legacy = signed_in.get(f"/auth/verify?allowed_emails={USER_EMAIL}", headers=url)
    assert legacy.status_code == 200  # the allow-list alone decides, as before policies
    refused = signed_in.get("/auth/verify?allowed_domains=other.example", headers=url)
    assert refused.status_code == 403
    assert refused.get_json() == {"error": {"code": "forbidden",
                                            "message": "Signed in, but not allowed by this rule."}}
    assert signed_in.get("/auth/verify?policy=unknown", headers=url).status_code == 403


def test_the_fast_path_never_serves_an_allow_from_an_older_version(app: Flask, signed_in: FlaskClient) -> None:
    set_identity(signed_in, groups=[FINANCE["id"]])
    url = nginx("GET", "https://finance.example.com/reports/q3")
    assert signed_in.get("/auth/verify", headers=url).status_code == 200
    assert fast(signed_in.get("/auth/verify", headers=url))
    # Saved in this process: seen at once.
    number, document = service.current()
    document["rules"][2]["criteria"]["groups_any"] = [{"id": "11111111-2222-3333-4444-555555555555",
                                                        "name": "Auditors"}]
    service.save(document, actor="admin@example.com")
    for _ in range(2):
        denied = signed_in.get("/auth/verify", headers=url)
        assert denied.status_code == 403 and denied.get_json()["error"]["message"] == "not in group Auditors"
    # Saved by another process: a new row, this process told nothing until its refresh period ends.
    document["rules"][2]["criteria"]["groups_any"] = [FINANCE]
    db.session.add(PolicyVersion(number=number + 2, document=service.normalize(document), created_by="other"))
    db.session.commit()
    app.extensions["policies"].fresh_until = 0.0  # POLICY_REFRESH_SECONDS went by
    first = signed_in.get("/auth/verify", headers=url)
    assert first.status_code == 200 and not fast(first)  # a new version: the view answers and signs
    assert fast(signed_in.get("/auth/verify", headers=url))
    # Another version where another rule allows the same request: not the cached answer of the first rule.
    document["rules"].insert(0, {"id": "r-open", "name": "Open reports", "host": "*", "paths": ["/reports/"]})
    db.session.add(PolicyVersion(number=number + 3, document=service.normalize(document), created_by="other"))
    db.session.commit()
    evaluate.forget(app)
    again = signed_in.get("/auth/verify", headers=url)
    assert again.status_code == 200 and not fast(again)
    # A cached allow for one rule is never served for a request another rule denies.
    assert signed_in.get("/auth/verify", headers=nginx("POST", "https://finance.example.com/x")).status_code == 403


def test_a_denial_names_the_group_by_its_current_name(signed_in: FlaskClient) -> None:
    db.session.add(Group(name="finance (local)", source_group_id=FINANCE["id"].upper(),
                         source_group_name="Finance Approvers EMEA"))  # renamed in Office 365, imported since
    db.session.commit()
    url = nginx("GET", "https://finance.example.com/reports/q3")
    denied = signed_in.get("/auth/verify", headers=url)
    assert denied.get_json()["error"]["message"] == "not in group Finance Approvers EMEA"
    row = db.session.scalars(db.select(AccessDecision)).one()
    assert row.granting_groups == [{"id": FINANCE["id"], "name": "Finance Approvers EMEA"}]
    set_identity(signed_in, groups=[FINANCE["id"]])  # still matched by id
    assert signed_in.get("/auth/verify", headers=url).status_code == 200


def test_an_authentication_context_step_up_is_401_step_up_required(signed_in: FlaskClient) -> None:
    service.save({"rules": [{"id": "r-pay", "name": "Payments", "host": "pay.example.com",
                             "criteria": {"auth_context": "c1"}}]}, actor="admin@example.com")
    url = traefik("POST", "https://pay.example.com/transfer")
    plain = signed_in.get("/auth/verify", headers=url)
    assert plain.status_code == 401 and plain.get_json()["error"] == {
        "code": "step_up_required", "message": "needs authentication context c1", "rule": "Payments"}
    assert decisions.query({"outcome": "step_up"}).items[0].reason == "needs authentication context c1"
    set_identity(signed_in, acrs=["c1"])
    assert signed_in.get("/auth/verify", headers=url).status_code == 200


def test_no_policy_saved_is_todays_behaviour(app: Flask, client: FlaskClient, plain_user: User) -> None:
    assert db.session.scalar(select(db.func.count()).select_from(PolicyVersion)) == 0
    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    url = nginx("DELETE", "https://anything.example.com/x")
    assert client.get("/auth/verify", headers=url).status_code == 200
    assert fast(client.get("/auth/verify", headers=url))
    assert client.get("/auth/verify").status_code == 200  # a proxy that sends no original URL
    assert client.get("/auth/verify?allowed_groups=", headers=url).status_code == 200  # empty legacy list


def test_a_proxy_sending_only_x_original_uri_still_has_its_path_judged(signed_in: FlaskClient) -> None:
    service.save({"rules": [{"name": "No admin", "paths": ["/admin/"], "action": "deny"}]}, actor="a@example.com")
    for _ in ("view", "fast path"):
        assert signed_in.get("/auth/verify", headers={"X-Original-URI": "/admin/users?x=1"}).status_code == 403
        assert signed_in.get("/auth/verify", headers={"X-Original-URI": "/home"}).status_code == 200


def test_a_host_passes_the_claims_it_chose_in_its_own_headers(app: Flask, signed_in: FlaskClient) -> None:
    """Issue 14, point 7: per host, which claims go upstream in which headers, beside the fixed set and the
    assertion; the fast path answers with the same headers, and another host's choice is never reused."""
    number, document = service.current()
    document["hosts"].append({"host": "finance.example.com", "default": "signed_in",
                              "headers": {"X-Auth-Request-Roles": "roles", "X-Auth-Tenant": "tid",
                                          "X-Auth-Request-Acrs": "acrs"}})
    service.save(document, actor="admin@example.com")
    set_identity(signed_in, groups=[FINANCE["id"]], roles=["Reports.Read", "Reports,Approve"], tid="t-1", acrs=[])
    url = nginx("GET", "https://finance.example.com/reports/q3")
    view = signed_in.get("/auth/verify", headers=url)
    repeat = signed_in.get("/auth/verify", headers=url)
    assert view.status_code == repeat.status_code == 200 and not fast(view) and fast(repeat)
    for answer in (view, repeat):
        assert answer.headers["X-Auth-Request-Roles"] == "Reports.Read,Reports%2CApprove"  # a comma stays one item
        assert answer.headers["X-Auth-Tenant"] == "t-1"
        assert answer.headers["X-Auth-Request-Acrs"] == ""
        assert answer.headers["X-Auth-Request-Email"] == USER_EMAIL and answer.headers["X-Auth-Request-Assertion"]
    # Another host whose entry chose nothing: the same session's answer carries only the fixed set.
    other = nginx("GET", "https://wiki.example.com/reports/q3")
    for _ in range(2):
        plain = signed_in.get("/auth/verify", headers=other)
        assert plain.status_code == 200 and "X-Auth-Request-Roles" not in plain.headers
    # The legacy query parameters keep their exact answer: no host headers.
    legacy = signed_in.get("/auth/verify?allowed_domains=example.com", headers=url)
    assert legacy.status_code == 200 and "X-Auth-Request-Roles" not in legacy.headers
