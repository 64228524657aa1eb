"""Authorization matrix (issue 10, class-level guard): every endpoint of `app.url_map` declares its access rule here,
and each endpoint is tried with each of its methods as five callers; each must get exactly what its rule allows.

A new endpoint fails `test_every_endpoint_declares_an_access_rule` until it is added to RULES. The table is keyed by
endpoint name (not by decorator), so it holds whatever framework registers the view (the JSON API may move to
flask-openapi3: keep the endpoint names, or rename them here).

Callers: anonymous; a plain User who is a Connection user of the datasource; a "Manage datasources" user (by
default a connection administrator of every datasource, and here not a Connection user); an Administrator (both);
an API key of the plain User, sent without any cookie. Requests go through `contextless_client`: no app context of
the test is pushed around them, as under gunicorn. Session callers send a valid CSRF token, so what is tested is
authorization, not CSRF (tests/app/test_csrf_matrix.py tests that).

"Allowed" means the answer is not a refusal (401, 403, or a redirect to /login) and never a 5xx; the request may
still fail on its input (400, 404, 409, 422), which is fine here. "Refused" means 401/403 or the sign-in redirect.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter, Rule

from core.extensions import db
from core.models import Datasource, Role, User
from tests.conftest import ContextlessClient, make_user

ADMINISTRATOR, MANAGER, USER = Role.ADMINISTRATOR, "Manage datasources", "User"


@dataclass(frozen=True)
class Caller:
    name: str
    roles: frozenset[str] = frozenset()
    session: bool = False  # signed in with a cookie session
    api_key: bool = False  # an API key in Authorization, no cookie
    connection_user: bool = False  # may run the datasource's operations
    connection_admin: bool = False  # may administer the datasource


CALLERS = (
    Caller("anonymous"),
    Caller("user", frozenset({USER}), session=True, connection_user=True),
    Caller("manager", frozenset({MANAGER}), session=True, connection_admin=True),
    Caller("admin", frozenset({ADMINISTRATOR}), session=True, connection_user=True, connection_admin=True),
    Caller("api_key", frozenset({USER}), api_key=True, connection_user=True),
)


@dataclass(frozen=True)
class Access:
    """An access rule: `allows(caller)` says who gets through."""

    name: str
    allows: Callable[[Caller], bool] = field(compare=False)
    refusals: frozenset[int] = frozenset({401, 403})  # statuses that say "not you" (besides the sign-in redirect)


def _admin_area(c: Caller) -> bool:
    return c.session and bool(c.roles & {ADMINISTRATOR, MANAGER})


PUBLIC = Access("public", lambda c: True)
SECRET = Access("secret in the request (a wrong one here: nobody gets through)", lambda c: False,
                frozenset({401, 403, 404}))
GRAPH_NOTIFICATION = Access("Graph's subscription and clientState in each item (none here: nobody gets through)",
                            lambda c: False, frozenset({400, 429}))
SIGNED_IN = Access("signed in", lambda c: c.session)
ADMIN_AREA = Access("role: Administrator or Manage datasources", _admin_area)
ADMINISTRATOR_ONLY = Access("role: Administrator", lambda c: c.session and ADMINISTRATOR in c.roles)
DATASOURCE_ADMIN = Access("admin area + connection administrator of the datasource",
                          lambda c: _admin_area(c) and c.connection_admin)
DATASOURCE_VIEWER = Access("admin area + connection administrator or user of the datasource",
                           lambda c: _admin_area(c) and (c.connection_admin or c.connection_user))
CONNECTION_USER = Access("signed in + Connection user of the datasource", lambda c: c.session and c.connection_user)
API_CALLER = Access("API key or signed in", lambda c: c.session or c.api_key)
API_CONNECTION_USER = Access("API key or signed in + Connection user of the datasource",
                             lambda c: (c.session or c.api_key) and c.connection_user)

RULES: dict[str, Access] = {
    # Public: sign-in, sign-out and logout channels, forward auth (401/403 are its answers, checked in
    # tests/sso/test_forward_auth.py), health, static files, the API's documentation.
    "static": PUBLIC, "bootstrap.static": PUBLIC, "health.healthz": PUBLIC, "health.readyz": PUBLIC,
    "sso.login": PUBLIC, "sso.sso_login": PUBLIC, "sso.sso_callback": PUBLIC, "sso.signed_out": PUBLIC,
    "sso.front_channel_logout": PUBLIC, "sso.back_channel_logout": PUBLIC,
    "sso.jwks": PUBLIC, "api.openapi_json": PUBLIC, "api.openapi_page": PUBLIC,
    "sso.logout": SIGNED_IN,  # signed out: to sign-in (there is nothing to end)
    "sso.forward_start": PUBLIC,  # the start of sign-in for forward auth
    "sso.denied": PUBLIC,  # says what was refused: to anyone, about their own session (tests/sso/test_denied.py)
    "sso.verify": Access("forward auth: 200 signed in, 401 otherwise",
                         lambda c: c.session),
    "hooks.run_task_webhook": SECRET, "hooks.run_task_webhook_header": SECRET,
    "metrics.metrics": SECRET,  # METRICS_TOKEN as a bearer token (404 while unset): tests/ops/test_metrics.py
    # Microsoft Graph's change notifications: each item proves itself by its subscription and clientState, a body
    # that is no notification collection is a 400 (tests/live/test_endpoint.py).
    "live.notifications": GRAPH_NOTIFICATION, "live.lifecycle": GRAPH_NOTIFICATION,
    # Signed in.
    "sso.home": SIGNED_IN, "sso.request_access": SIGNED_IN,
    "sso.my_sessions": SIGNED_IN, "sso.end_my_session": SIGNED_IN, "sso.preferences": SIGNED_IN,
    "admin.o365_index": SIGNED_IN,
    # Access requests: any signed-in person; the views list and decide only what the caller may (Administrators,
    # owners of the group): tests/admin/test_access_requests.py.
    # The world's request is for a group nobody here owns: only the Administrator may decide it.
    "admin.access_requests": SIGNED_IN, "admin.access_request_approve": ADMINISTRATOR_ONLY,
    "admin.access_request_refuse": ADMINISTRATOR_ONLY,
    # Administration (blueprint-wide: Administrator or Manage datasources), narrowed per view.
    "admin.index": ADMIN_AREA, "admin.datasources": ADMIN_AREA, "admin.datasource_new": ADMIN_AREA,
    "admin.datasource_authorize_callback": ADMIN_AREA,  # then the pending authorization must be the caller's own
    "admin.datasource_new_office365": ADMIN_AREA,
    "admin.datasource_detail": DATASOURCE_VIEWER,
    "admin.datasource_security": DATASOURCE_ADMIN, "admin.datasource_delete": DATASOURCE_ADMIN,
    "admin.datasource_authorize": DATASOURCE_ADMIN, "admin.datasource_test": DATASOURCE_ADMIN,
    "admin.datasource_live_access": DATASOURCE_ADMIN, "admin.datasource_live_access_check": DATASOURCE_ADMIN,
    **{f"admin.{name}": ADMINISTRATOR_ONLY for name in (
        "datasource_change_tenant", "datasource_confirm_tenant",
        "users", "users_csv", "user_create", "user_edit", "user_delete", "audit_log", "audit_csv",
        "api_keys", "api_key_revoke", "import_settings",
        "scheduled_tasks", "scheduled_task_new", "scheduled_task_detail", "scheduled_task_delete",
        "scheduled_task_run", "scheduled_task_toggle", "scheduled_task_webhook", "task_run_detail",
        "task_run_progress", "task_run_confirm",
        "single_sign_on", "sso_settings_save", "sso_diagnostics", "sso_provider_add", "sso_provider_delete",
        "sso_key_rotate", "sso_key_prune", "sso_sessions_lookup", "sso_user_sessions", "sso_user_session_end",
        "sso_user_sessions_end_all",
        "access_policies", "access_policy_rule_new", "access_policy_rule", "access_policy_move_up",
        "access_policy_move_down", "access_policy_toggle", "access_policy_duplicate", "access_policy_delete",
        "access_policy_hosts", "access_policy_history", "access_policy_groups", "access_policy_what_if",
        "decisions")},
    # Office 365 operation pages: Connection users of the datasource (no admin-area role needed).
    **{f"admin.{name}": CONNECTION_USER for name in (
        "o365_home", "o365_users", "o365_user", "o365_groups", "o365_group", "o365_group_new",
        "o365_group_add_member", "o365_group_remove_member", "o365_group_members_csv", "o365_users_csv",
        "o365_licences", "o365_licence_assign",
        "o365_licence_remove", "o365_bulk", "o365_bulk_members", "o365_bulk_licences", "o365_bulk_preview",
        "o365_bulk_job", "o365_bulk_job_status", "o365_bulk_job_queue", "o365_bulk_job_cancel",
        "o365_bulk_job_retry")},
    # JSON API: an API key or the session; each datasource's operations for its Connection users.
    "api.datasources": API_CALLER,
    **{f"api.{name}": API_CONNECTION_USER for name in (
        "list_users", "find_users", "get_user", "user_groups", "list_groups", "find_groups", "get_group",
        "check_member", "create_group",
        "add_user_to_group", "remove_user_from_group", "list_licence_plans", "assign_licence", "remove_licence",
        "bulk_add_users_to_group", "bulk_assign_licence", "create_bulk_job", "get_bulk_job", "bulk_job_results",
        "queue_bulk_job", "cancel_bulk_job", "retry_failed_bulk_job")},
}

# Path arguments that are not ids of the world's rows (directory object ids are GUIDs).
GUID = "0b0b0b0b-1c1c-4d4d-8e8e-2f2f2f2f2f2f"
STRING_ARGUMENTS = {"group_id": GUID, "user_id": GUID, "sku_id": GUID, "name": "nosuch", "secret": "wrong-secret",
                    "rule_id": "r-nosuch"}
STATIC_FILES = {"static": "css/app.css", "bootstrap.static": "css/bootstrap.min.css"}
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def _methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def endpoint_rules(app: Flask) -> list[Rule]:
    """Every URL rule, the ones that end the caller's own session last."""
    return sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint == "sso.logout", r.endpoint, r.rule))


@dataclass
class World:
    """Rows the URLs point at, made afresh before each unsafe request (an allowed caller may delete them)."""

    ids: dict[str, int]
    public_id: str


def make_world(app: Flask, connection_user: User) -> World:
    from bulk.models import BulkJob
    from core.api_keys import ApiKey
    from jobs.models import ScheduledTask, TaskRun
    from sso.models import AccessRequest, SsoProvider
    from sso.sessions import SessionRecord, hash_token, store

    tag = uuid.uuid4().hex[:8]
    datasource = Datasource(name=f"Contoso {tag}", user_users=[connection_user.email],
                            user_roles_allowed=[ADMINISTRATOR])
    target = User(email=f"target-{tag}@example.com", display_name="Target User")
    db.session.add_all([datasource, target])
    db.session.flush()
    key, _ = ApiKey.issue(target, f"key {tag}", expires_at=None, created_by="test")
    task = ScheduledTask(name=f"Import {tag}", datasource_id=datasource.id, schedule="daily")
    provider = SsoProvider(name=f"idp-{tag}", issuer="https://idp.example.org", client_id="gw")
    db.session.add_all([key, task, provider])
    db.session.flush()
    run = TaskRun(task_id=task.id, datasource_id=datasource.id, kind=task.kind, status=TaskRun.SUCCEEDED)
    bulk_job = BulkJob(datasource_id=datasource.id, action="add", target_id=GUID, total=0)
    access_request = AccessRequest(requester_id=target.id, requester_label=target.email, datasource_id=datasource.id,
                                   group_id=GUID, group_name="Finance", approver_ids=[])
    db.session.add_all([run, bulk_job, access_request])
    db.session.commit()
    now = time.time()
    public_id = secrets.token_hex(8)
    with app.app_context():
        store().save(SessionRecord(
            id_hash=hash_token(secrets.token_urlsafe(32)), public_id=public_id, user_id=target.id, created_at=now,
            last_seen_at=now, expires_at=now + 3600, idle_seconds=3600,
            data={"_user_id": str(target.id), "identity": {"user": target.email, "email": target.email}}))
    return World({"datasource_id": datasource.id, "user_id": target.id, "key_id": key.id, "task_id": task.id,
                  "run_id": run.id, "provider_id": provider.id, "job_id": bulk_job.id,
                  "request_id": access_request.id}, public_id)


def build_url(rule: Rule, world: World) -> str:
    values: dict[str, Any] = {}
    for argument in rule.arguments:
        if rule.endpoint in STATIC_FILES:
            values[argument] = STATIC_FILES[rule.endpoint]
        elif isinstance(rule._converters[argument], IntegerConverter):  # noqa: SLF001 - werkzeug has no public API
            values[argument] = world.ids[argument]
        elif argument == "public_id":
            values[argument] = world.public_id
        else:
            values[argument] = STRING_ARGUMENTS[argument]
    url = rule.rule
    for argument, value in values.items():
        url = re.sub(rf"<(?:[^:<>]+:)?{argument}>", str(value), url)
    return url


def example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A small value valid for a JSON schema of the API document (required properties only)."""
    if "$ref" in schema:
        return example(components[schema["$ref"].rsplit("/", 1)[1]], components)
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            return example(next(s for s in schema[combinator] if s.get("type") != "null"), components)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: example(schema["properties"][name], components) for name in schema.get("required", [])}
    if kind == "array":
        return [example(schema.get("items", {}), components)] * max(1, schema.get("minItems", 1))
    if kind in ("integer", "number"):
        return int(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    candidates = [GUID, "user@example.com", "US", "x" * max(1, schema.get("minLength", 1))]
    return next(c for c in candidates if re.fullmatch(schema.get("pattern", ".*"), c))


def api_inputs(app: Flask) -> dict[tuple[str, str], tuple[dict[str, Any], Any]]:
    """(method, URL rule) -> (query, JSON body) that pass the API's validation, from /api/v1/openapi.json: the
    matrix tests authorization, so an API endpoint must not stop an unauthorized caller at input validation."""
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    base = document.get("servers", [{}])[0].get("url", "")
    components = document.get("components", {}).get("schemas", {})
    inputs = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            query = {p["name"]: example(p["schema"], components) for p in operation.get("parameters", [])
                     if p["in"] == "query" and p.get("required")}
            body_schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            body = example(body_schema["schema"], components) if "schema" in body_schema else None
            inputs[(method.upper(), base + path)] = (query, body)
    return inputs


def openapi_path(rule: Rule) -> str:
    return re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule.rule)


def page_csrf_token(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', page)
    assert match, f"{path} carries a CSRF token"
    return match.group(1)


def sign_in_as(app: Flask, email: str, password: str) -> FlaskClient:
    client = ContextlessClient(app, app.response_class, use_cookies=True)
    token = page_csrf_token(client, "/login")
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code == 302, f"{email} signs in"
    return client


@dataclass
class CallerClient:
    caller: Caller
    client: FlaskClient
    csrf: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, url: str, api_input: tuple[dict[str, Any], Any] | None = None) -> Any:
        headers = dict(self.headers)
        data = None
        if method in UNSAFE and self.csrf:
            headers["X-CSRFToken"] = self.csrf
            data = {"csrf_token": self.csrf}
        if api_input is not None:
            query, body = api_input
            headers.setdefault("Accept", "application/json")
            return self.client.open(url, method=method, headers=headers, query_string=query, json=body)
        return self.client.open(url, method=method, headers=headers, data=data)


@pytest.fixture
def callers(app: Flask, contextless_client: FlaskClient) -> Iterator[tuple[dict[str, CallerClient], User]]:
    from core.api_keys import ApiKey

    password = "matrix-password-0123"
    user = make_user("user@example.com", password, USER)
    make_user("manager@example.com", password, MANAGER)
    make_user("admin@example.com", password, ADMINISTRATOR)
    row, key = ApiKey.issue(user, "matrix", expires_at=None, created_by="test")
    db.session.add(row)
    db.session.commit()
    clients = {"anonymous": CallerClient(CALLERS[0], contextless_client, page_csrf_token(contextless_client,
                                                                                          "/login"))}
    for caller in CALLERS[1:4]:
        client = sign_in_as(app, f"{caller.name}@example.com", password)
        clients[caller.name] = CallerClient(caller, client, page_csrf_token(client, "/sessions"))
    key_client = ContextlessClient(app, app.response_class, use_cookies=True)  # no session but an anonymous one,
    clients["api_key"] = CallerClient(CALLERS[4], key_client, page_csrf_token(key_client, "/login"),  # so forms
                                      headers={"Authorization": f"Bearer {key}"})  # pass CSRF and meet authorization
    yield clients, user


def refused(response: Any, access: Access) -> bool:
    """401/403 (or the rule's own refusals), or Flask-Login's redirect to sign in (it carries `next`)."""
    if response.status_code in access.refusals:
        return True
    location = urlsplit(response.headers.get("Location", ""))
    return response.status_code in (301, 302, 303, 307) and location.path == "/login" and "next=" in location.query


def test_every_endpoint_declares_an_access_rule(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    undeclared = sorted(endpoints - set(RULES))
    assert not undeclared, f"declare the access rule of these endpoints in RULES: {undeclared}"
    stale = sorted(set(RULES) - endpoints)
    assert not stale, f"RULES names endpoints that no longer exist: {stale}"


def test_each_endpoint_answers_each_caller_as_its_rule_says(
        app: Flask, callers: tuple[dict[str, CallerClient], User]) -> None:
    clients, connection_user = callers
    inputs = api_inputs(app)
    wrong: list[str] = []
    world = None
    for rule in endpoint_rules(app):
        access = RULES.get(rule.endpoint)
        if access is None:
            continue  # reported by test_every_endpoint_declares_an_access_rule
        for method in _methods(rule):
            if world is None or method in UNSAFE:  # an unsafe request may change or delete the rows
                world = make_world(app, connection_user)
            url = build_url(rule, world)
            api_input = inputs.get((method, openapi_path(rule)))
            if rule.endpoint.startswith("api.") and rule.endpoint not in ("api.openapi_json", "api.openapi_page"):
                assert api_input is not None, f"{method} {rule.rule} is in the API but not in its document"
            for caller in CALLERS:
                response = clients[caller.name].request(method, url, api_input)
                expected = "allowed" if access.allows(caller) else "refused"
                got = "refused" if refused(response, access) else "allowed"
                if response.status_code >= 500 or got != expected:
                    wrong.append(f"{method} {url} ({rule.endpoint}, {access.name}) as {caller.name}: "
                                 f"{response.status_code} {response.headers.get('Location', '')}, expected {expected}")
    assert not wrong, "\n".join(wrong)


def test_the_contextless_client_runs_requests_as_production_does(app: Flask, client: FlaskClient,
                                                                 contextless_client: FlaskClient) -> None:
    """Guard (c): the usual client runs each request inside the test's pushed app context, so a streamed body that
    needs the app (or the request's database session) after the view returned still works; under gunicorn it
    does not. The contextless client shows what production shows."""
    from flask import Response, has_app_context

    seen: dict[str, list[Any]] = {"streamed in an app context": [], "session": []}

    @app.get("/_context_probe")
    def probe() -> Response:
        seen["session"].append(db.session())

        def body() -> Iterator[str]:
            yield "a"
            seen["streamed in an app context"].append(has_app_context())  # after the view returned

        return Response(body())

    assert client.get("/_context_probe").get_data(as_text=True) == "a"
    assert contextless_client.get("/_context_probe").get_data(as_text=True) == "a"
    assert seen["streamed in an app context"] == [True, False]  # the pushed context keeps a stream's app alive
    assert seen["session"][0] is db.session() and seen["session"][1] is not db.session()  # ... and shares the
    # test's database session with the request's (objects, transactions and closed sessions hide behind it)
