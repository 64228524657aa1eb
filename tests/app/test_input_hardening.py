"""Malformed input is refused with a clear 4xx, never a 500: text that is not valid Unicode (422, everywhere),
integers no column holds and Unicode digits (404 in paths, 422 or a field error in forms and query args), JSON
nested too deeply (a stable code); and an audit row can always be written, whatever text it carries."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import AuditEvent
from tests.conftest import csrf_token, make_user
from tests.o365_ops_helpers import api_key_for, bearer


@pytest.fixture
def api_headers(app: Flask) -> dict[str, str]:
    return bearer(api_key_for(make_user("script@example.com", None, "Administrator")))


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(db.select(AuditEvent).filter_by(action=action)))


# -- text that is not valid Unicode -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ['{"display_name": "\\ud800"}', '{"display_name": "ok", "owners": ["\\udfff"]}',
                                  '{"\\ud83d": 1}', '{"display_name": "nul\\u0000"}'])
def test_json_with_lone_surrogates_or_nul_is_refused_with_422(client: FlaskClient, api_headers: dict[str, str],
                                                              body: str) -> None:
    answer = client.post("/api/v1/datasources/1/groups", data=body, headers=api_headers,
                         content_type="application/json")
    assert answer.status_code == 422 and answer.json["error"]["code"] == "invalid_text"


def test_json_that_is_not_utf8_is_refused_with_422(client: FlaskClient, api_headers: dict[str, str]) -> None:
    answer = client.post("/api/v1/datasources/1/groups", data=b'{"display_name": "\xff\xfe"}', headers=api_headers,
                         content_type="application/json")
    assert answer.status_code == 422 and answer.json["error"]["code"] == "invalid_text"


@pytest.mark.parametrize("path", ["/admin/users?q=%ED%A0%80", "/admin/users?q=%FF", "/admin/users?q=a%00b",
                                  "/admin/users?%C0%80=1", "/sessions/%ED%A0%80/end", "/admin/%FF"])
def test_query_args_and_paths_that_are_not_utf8_are_refused_with_422(admin_client: FlaskClient, path: str) -> None:
    method = admin_client.post if path.endswith("/end") else admin_client.get
    answer = method(path)
    assert answer.status_code == 422, path
    assert "not valid text" in answer.get_data(as_text=True)


@pytest.mark.parametrize("value", [b"%ED%A0%80", b"%FF", b"caf%E9", b"a%00b"])
def test_form_fields_that_are_not_utf8_are_refused_with_422(admin_client: FlaskClient, value: bytes) -> None:
    token = csrf_token(admin_client, "/admin/users/new")
    body = b"csrf_token=" + token.encode() + b"&email=x%40example.com&roles=User&display_name=" + value
    answer = admin_client.post("/admin/users/new", data=body, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 422
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEvent).filter_by(
        action="user.create")) == 0


def test_multipart_fields_with_nul_are_refused_with_422(admin_client: FlaskClient) -> None:
    token = csrf_token(admin_client, "/admin/users/new")
    answer = admin_client.post("/admin/users/new", content_type="multipart/form-data", data={
        "csrf_token": token, "email": "x@example.com", "display_name": "a\x00b", "roles": "User"})
    assert answer.status_code == 422


def test_valid_unicode_still_goes_through(admin_client: FlaskClient) -> None:
    token = csrf_token(admin_client, "/admin/users/new")
    answer = admin_client.post("/admin/users/new", data={
        "csrf_token": token, "email": "zoe@example.com", "display_name": "Zoë 😀 Ωmega", "roles": "User"})
    assert answer.status_code == 302
    assert admin_client.get("/admin/users?q=%C3%AB").status_code == 200  # "ë", UTF-8 percent-encoded


def test_an_audit_row_cannot_fail_on_what_it_stores(app: Flask) -> None:
    """Surrogates, NUL, over-long fields and values JSON cannot hold: stored (made safe), on both backends."""
    from core import audit

    event = audit.record("x" * 200 + "\ud800", "target\ud800\x00" + "t" * 600, actor="a\udfff" * 200,
                         outcome="odd\x00" * 20, datasource="d\ud800" * 80, operation="o\x00" * 70,
                         name="\ud83d", nested={"k\ud800": ["\x00", {"deep": "\udfff"}], 3: {1, 2}},
                         when=datetime(2026, 1, 2, 3, 4, 5), blob=b"\xff\x00")
    db.session.commit()  # record() adds the row; the caller commits
    db.session.expire_all()
    stored = db.session.get(AuditEvent, event.id)
    assert stored is not None and len(stored.target) <= 512 and len(stored.action) <= 64
    assert len(stored.actor) <= 320 and len(stored.outcome) <= 32 and len(stored.operation or "") <= 64
    assert "\x00" not in stored.target and "\ufffd" in stored.target
    text = json.dumps(stored.detail, ensure_ascii=False)
    text.encode("utf-8")  # no surrogate left anywhere
    assert "\\u0000" not in json.dumps(stored.detail) and stored.detail["when"].startswith("2026-01-02")


# -- numbers ------------------------------------------------------------------------------------------------------

HUGE = "99999999999999999999"


@pytest.mark.parametrize("path", [f"/admin/users/{HUGE}", f"/admin/users/{2**31}", "/admin/users/１２",
                                  "/admin/users/%C2%B2", f"/admin/datasources/{HUGE}", f"/admin/scheduled-tasks/{HUGE}",
                                  f"/admin/scheduled-tasks/runs/{2**63}", f"/admin/sso/users/{HUGE}/sessions",
                                  f"/admin/datasources/{HUGE}/o365/users", "/admin/users/0"])
def test_ids_in_paths_beyond_the_database_are_404(admin_client: FlaskClient, path: str) -> None:
    assert admin_client.get(path).status_code == 404, path


@pytest.mark.parametrize("path", [f"/api/v1/datasources/{HUGE}/users", f"/api/v1/datasources/{2**31}/groups"])
def test_api_ids_beyond_the_database_are_404_json(client: FlaskClient, api_headers: dict[str, str],
                                                  path: str) -> None:
    answer = client.get(path, headers=api_headers)
    assert answer.status_code == 404 and answer.json["error"]["code"] == "not_found"


def test_the_largest_id_still_routes(admin_client: FlaskClient) -> None:
    assert admin_client.get(f"/admin/users/{2**31 - 1}").status_code == 404  # routed, then not found
    assert "user_edit" in {rule.endpoint.rsplit(".", 1)[-1] for rule in admin_client.application.url_map.iter_rules()
                           if str(rule).startswith("/admin/users/<id:")}


@pytest.mark.parametrize("query", [f"page={HUGE}", "page=１２", "page=²", f"per_page={HUGE}", "page=-1"])
def test_paging_numbers_are_ascii_and_bounded(admin_client: FlaskClient, query: str) -> None:
    answer = admin_client.get(f"/admin/users?{query}")
    assert answer.status_code == 422 and "whole number" in answer.get_data(as_text=True)
    assert admin_client.get(f"/admin/audit?{query}", headers={"Accept": "application/json"}).json["error"][
        "code"] == "invalid_number"


def test_a_page_past_the_end_is_empty_not_an_error(admin_client: FlaskClient) -> None:
    assert admin_client.get("/admin/users?page=1000000000").status_code == 200


@pytest.mark.parametrize("value", ["²", "１２", HUGE])
def test_sso_settings_numbers_are_ascii_digits(admin_client: FlaskClient, value: str) -> None:
    token = csrf_token(admin_client, "/admin/sso")
    answer = admin_client.post("/admin/sso", data={
        "csrf_token": token, "bypass_role": "Administrator", "idle_timeout_minutes": value,
        "absolute_timeout_hours": "12", "clock_leeway_seconds": "60", "group_cache_minutes": "10"})
    assert answer.status_code == 400 and "must be a whole number" in answer.get_data(as_text=True)


@pytest.mark.parametrize("value", ["²", HUGE])
def test_sso_provider_datasource_id_is_ascii_digits(admin_client: FlaskClient, value: str) -> None:
    token = csrf_token(admin_client, "/admin/sso")
    answer = admin_client.post("/admin/sso/providers", data={"csrf_token": token, "kind": "office365",
                                                              "name": "o365", "datasource_id": value})
    assert answer.status_code == 400 and "Choose an Office 365 datasource" in answer.get_data(as_text=True)


@pytest.mark.parametrize("value", ["２", "²", HUGE])
def test_number_fields_take_ascii_digits_only(admin_client: FlaskClient, value: str) -> None:
    make_user("script@example.com", None, "User")
    token = csrf_token(admin_client, "/admin/api-keys")
    answer = admin_client.post("/admin/api-keys", data={"csrf_token": token, "email": "script@example.com",
                                                         "name": "nightly", "expires_in_days": value})
    assert answer.status_code in (200, 400) and "digits 0-9" in answer.get_data(as_text=True)
    assert not _events("api_key.create")


@pytest.mark.parametrize("query", ["datasource=²", f"datasource={HUGE}"])
def test_scheduled_task_form_datasource_arg(admin_client: FlaskClient, query: str) -> None:
    assert admin_client.get(f"/admin/scheduled-tasks/new?{query}").status_code == 422


def test_datasource_version_field_is_ascii_digits(admin_client: FlaskClient) -> None:
    from core.models import Datasource

    datasource = Datasource(name="HR", kind="office365")
    db.session.add(datasource)
    db.session.commit()
    token = csrf_token(admin_client, f"/admin/datasources/{datasource.id}")
    for version in ("²", HUGE):
        answer = admin_client.post(f"/admin/datasources/{datasource.id}", data={
            "csrf_token": token, "name": "HR renamed", "version": version, "save": "Save"})
        assert answer.status_code < 500
        db.session.expire_all()
        assert db.session.get(Datasource, datasource.id).name == "HR"


# -- nesting ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_json_is_refused_with_a_stable_code(client: FlaskClient, api_headers: dict[str, str],
                                                          depth: int) -> None:
    body = "[" * depth + "]" * depth
    answer = client.post("/api/v1/datasources/1/groups", data=body, headers=api_headers,
                         content_type="application/json")
    assert answer.status_code == 400 and answer.json["error"]["code"] == "json_too_deep"


def test_deeply_nested_policies_json_in_a_form_is_a_message(admin_client: FlaskClient) -> None:
    token = csrf_token(admin_client, "/admin/sso")
    answer = admin_client.post("/admin/sso", data={
        "csrf_token": token, "bypass_role": "Administrator", "idle_timeout_minutes": "60",
        "absolute_timeout_hours": "12", "clock_leeway_seconds": "60", "group_cache_minutes": "10",
        "policies": "[" * 100_000 + "]" * 100_000})
    assert answer.status_code == 400 and "Policies must be JSON" in answer.get_data(as_text=True)


def test_audit_record_never_commits_on_its_own(app: Flask) -> None:
    """Issue 11 point 4: the row joins the caller's transaction, so a rollback takes it away with the change."""
    from core import audit

    audit.record("test.uncommitted", "nothing")
    db.session.rollback()
    assert db.session.query(AuditEvent).filter_by(action="test.uncommitted").count() == 0
