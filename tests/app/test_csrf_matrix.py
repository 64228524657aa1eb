"""CSRF matrix (issue 10, class-level guard): every unsafe (POST/PUT/PATCH/DELETE) route of `app.url_map` that a
cookie session can call refuses a missing token and a foreign one (valid, but another session's), writing nothing;
with the caller's own token the same request is not refused for CSRF (so the refusals are CSRF's, not something
else's). Routes that a cookie session never drives are listed in NOT_COOKIE_DRIVEN with what protects them instead,
and that protection is checked here too. A new unsafe route is covered automatically.

As in tests/app/test_authorization_matrix.py, requests go through the contextless client (no test app context).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, literal, select, union_all

from core.extensions import db
from tests.app.test_authorization_matrix import (
    GUID,
    UNSAFE,
    World,
    build_url,
    endpoint_rules,
    make_world,
    page_csrf_token,
    sign_in_as,
)
from tests.conftest import ContextlessClient, make_user

PASSWORD = "csrf-matrix-password-0123"
CSRF_PAGE_TEXT = "The form expired or was sent from elsewhere"

# Unsafe routes a browser's cookie session does not drive: what protects each instead, checked below.
NOT_COOKIE_DRIVEN = {
    "sso.sso_callback": "the identity provider's form_post: single-use state bound to a cookie of the flow",
    "sso.back_channel_logout": "server to server: a signed logout_token",
    "hooks.run_task_webhook": "the task's webhook secret (in the path)",
    "hooks.run_task_webhook_header": "the task's webhook secret (in a header)",
    "live.notifications": "Microsoft Graph's posts: each item's subscription id and clientState (tests/live/)",
    "live.lifecycle": "Microsoft Graph's posts: each item's subscription id and clientState (tests/live/)",
}
ANONYMOUS_FORMS = {"sso.login"}  # unsafe routes an anonymous visitor posts (login CSRF)
# Rows that a refused request may still write: the request's own session touch and the audit of the refusal.
MAY_CHANGE = {"user_sessions", "audit_events", "sso_sign_in_attempts", "live_refused_notifications"}


def row_counts() -> dict[str, int]:
    """Rows per table, in one query."""
    db.session.rollback()  # see other connections' commits
    tables = [table for table in db.metadata.sorted_tables if table.name not in MAY_CHANGE]
    counts = union_all(*(select(literal(table.name).label("name"), func.count().label("rows")).select_from(table)
                         for table in tables))
    return {name: rows for name, rows in db.session.execute(counts)}


def is_csrf_refusal(response: Any) -> bool:
    if response.status_code != 400:
        return False
    if response.is_json:
        return (response.get_json() or {}).get("error", {}).get("code") == "csrf_failed"
    return CSRF_PAGE_TEXT in response.get_data(as_text=True)


def send(client: FlaskClient, method: str, url: str, token: str | None) -> Any:
    if url.startswith("/api/"):
        headers = {"Accept": "application/json", **({"X-CSRFToken": token} if token else {})}
        return client.open(url, method=method, headers=headers, json={})
    return client.open(url, method=method, data={"csrf_token": token} if token else {})


@pytest.fixture
def sessions(app: Flask, contextless_client: FlaskClient) -> dict[str, tuple[FlaskClient, str]]:
    """The Administrator's session (every cookie route is open to it), another user's, and two anonymous ones."""
    user = make_user("user@example.com", PASSWORD, "User")
    make_user("admin@example.com", PASSWORD, "Administrator")
    admin = sign_in_as(app, "admin@example.com", PASSWORD)
    other = sign_in_as(app, "user@example.com", PASSWORD)
    stranger = ContextlessClient(app, app.response_class, use_cookies=True)
    return {"admin": (admin, page_csrf_token(admin, "/sessions")),
            "other": (other, page_csrf_token(other, "/sessions")),
            "anonymous": (contextless_client, page_csrf_token(contextless_client, "/login")),
            "other_anonymous": (stranger, page_csrf_token(stranger, "/login")),
            "connection_user": user}  # type: ignore[dict-item]


def test_every_unsafe_cookie_route_refuses_a_missing_or_foreign_token(
        app: Flask, sessions: dict[str, Any]) -> None:
    admin, admin_token = sessions["admin"]
    anonymous, anonymous_token = sessions["anonymous"]
    foreign_tokens = {"another user's": sessions["other"][1], "another anonymous session's":
                      sessions["other_anonymous"][1]}
    wrong: list[str] = []
    checked = 0
    for rule in endpoint_rules(app):
        if rule.endpoint in NOT_COOKIE_DRIVEN:
            continue
        for method in sorted((rule.methods or set()) & set(UNSAFE)):
            world: World = make_world(app, sessions["connection_user"])
            url = build_url(rule, world)
            caller, own_token = (anonymous, anonymous_token) if rule.endpoint in ANONYMOUS_FORMS else (admin,
                                                                                                     admin_token)
            for label, token in {"no token": None, **foreign_tokens}.items():
                before = row_counts()
                response = send(caller, method, url, token)
                if not is_csrf_refusal(response):
                    wrong.append(f"{method} {url} ({rule.endpoint}) with {label}: {response.status_code}, "
                                 "expected the CSRF refusal (400)")
                elif row_counts() != before:
                    wrong.append(f"{method} {url} ({rule.endpoint}) with {label}: refused, but rows were written")
            checked += 1
            response = send(caller, method, url, own_token)
            if is_csrf_refusal(response) or response.status_code >= 500:
                wrong.append(f"{method} {url} ({rule.endpoint}) with the session's own token: "
                             f"{response.status_code} (the refusals above must be CSRF's)")
    assert not wrong, "\n".join(wrong)
    assert checked > 40, f"only {checked} unsafe routes found: the url_map walk is broken"


def test_unsafe_routes_no_cookie_drives_refuse_without_their_own_proof(
        app: Flask, sessions: dict[str, Any]) -> None:
    admin, _ = sessions["admin"]
    unsafe = {rule.endpoint for rule in app.url_map.iter_rules() if (rule.methods or set()) & set(UNSAFE)}
    assert set(NOT_COOKIE_DRIVEN) <= unsafe, "NOT_COOKIE_DRIVEN names routes that are gone or no longer unsafe"
    before = row_counts()
    callback = admin.post("/sso/callback", data={"code": "x", "state": "forged"})
    assert callback.status_code in (400, 403) or "/sso/callback" not in callback.headers.get("Location", "x")
    assert admin.post("/sso/back-channel-logout/nosuch", data={}).status_code in (400, 404)
    assert admin.post("/sso/back-channel-logout/nosuch", data={"logout_token": "a.b.c"}).status_code in (400, 404)
    assert admin.post("/hooks/tasks/wrong-secret").status_code == 404
    assert admin.post("/hooks/tasks", headers={"X-Webhook-Secret": "wrong-secret"}).status_code == 404
    assert admin.post("/hooks/tasks").status_code == 401
    forged = {"value": [{"subscriptionId": GUID, "clientState": "forged", "tenantId": GUID, "changeType": "updated",
                         "resource": f"Users/{GUID}"}]}
    assert admin.post("/graph/notifications", json=forged).status_code == 202  # refused quietly, like Graph's
    assert admin.post("/graph/lifecycle", json={"value": [{**forged["value"][0], "lifecycleEvent": "missed"}]}
                      ).status_code == 202
    assert row_counts() == before
    assert admin.get("/sessions").status_code == 200  # none of it touched the caller's session
