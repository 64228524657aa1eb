"""The JSON API keeps to its OpenAPI document: Schemathesis derives requests from /api/v1/openapi.json (its
coverage cases: boundaries, wrong types, missing fields, undeclared methods; then a few random valid and invalid
ones) and checks every answer against the document, with an API key on a ready datasource of the tenant
emulator. Beside it, each drift found once, checked directly."""

from __future__ import annotations

from datetime import timedelta

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from core.models import Datasource, User
from emulator.server import EmulatorHandle
from tests.o365_helpers import emulator_env
from tests.o365_ops_helpers import api_key_for, authorized_datasource, bearer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection, unsupported_method]
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
# The budget: every coverage case (about 700 requests), then a few random cases per operation and mode;
# about 45 s in all on a quiet machine. No request may take 10 s (Graph retries end within 3 s in tests).
RANDOM_EXAMPLES = 3
REQUEST_DEADLINE = timedelta(seconds=10)
OPERATIONS = 23


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(emulator)


def test_every_operation_answers_as_documented(app: Flask, admin_client: FlaskClient, emulator: EmulatorHandle,
                                               admin_user: User) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    config = schemathesis.Config.from_dict({"parameters": {"path.datasource_id": ds.id}})
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
    headers = bearer(api_key_for(admin_user))
    failures: list[str] = []

    def check(case: schemathesis.Case) -> None:
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        except FailureGroup as exc:
            failures.append(str(exc))

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == OPERATIONS
    for operation in operations:
        for case in schema.iter_coverage_cases(operation, generation_modes=MODES,
                                               generation_config=schema.config.generation_for(operation=operation)):
            check(case)
        for mode in MODES:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=RANDOM_EXAMPLES, deadline=REQUEST_DEADLINE, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def random_case(case: schemathesis.Case) -> None:
                check(case)

            random_case()
    assert not failures, f"{len(failures)} answers differ from the document:\n\n" + "\n\n".join(failures[:10])


# -- the drifts found once, each pinned ---------------------------------------------------------------------


def _error_schema(doc: dict) -> dict:
    return doc["components"]["schemas"]["ErrorDetail"]["properties"]


def test_405_says_which_methods_the_address_accepts(client: FlaskClient, admin_user: User) -> None:
    h = bearer(api_key_for(admin_user))
    for method, url, allowed in (("DELETE", "/api/v1/datasources", {"GET", "HEAD", "OPTIONS"}),
                                 ("PUT", "/api/v1/datasources/1/groups", {"GET", "HEAD", "OPTIONS", "POST"})):
        answer = client.open(url, method=method, headers=h)
        assert answer.status_code == 405 and answer.get_json()["error"]["code"] == "method_not_allowed"
        assert {m.strip() for m in answer.headers["Allow"].split(",")} == allowed


def test_an_object_where_a_list_is_documented_is_refused(client: FlaskClient, admin_user: User) -> None:
    h = bearer(api_key_for(admin_user))
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["components"]["schemas"]["NewGroupBody"]["properties"]["owners"]["type"] == "array"
    for body, field in (({"display_name": "X", "owners": {}}, "owners"),
                        ({"display_name": "X", "members": {"a": "b"}}, "members"),
                        ({"display_name": ["X"]}, "display_name"),
                        ({"display_name": "X", "colour": "red"}, "colour")):
        answer = client.post("/api/v1/datasources/1/groups", headers=h, json=body)
        error = answer.get_json()["error"]
        assert (answer.status_code, error["code"], error["field"]) == (422, "invalid_field", field), error
    bulk = client.post("/api/v1/datasources/1/bulk/group-licences", headers=h, json={
        "group_id": "0b6e4f5c-1111-4d1e-9a57-2b0c5b6f3a10", "sku_id": "0b6e4f5c-1111-4d1e-9a57-2b0c5b6f3a10",
        "dry_run": "yes"})
    assert bulk.status_code == 422 and bulk.get_json()["error"]["field"] == "dry_run"


def test_identifiers_are_documented_as_the_api_checks_them(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    params = {(path, p["name"]): p["schema"] for path, item in doc["paths"].items() for op in item.values()
              for p in op.get("parameters", [])}
    group = params[("/datasources/{datasource_id}/groups/{group_id}", "group_id")]
    assert group["format"] == "uuid" and group["pattern"].startswith("^[0-9a-fA-F]{8}")
    user = params[("/datasources/{datasource_id}/users/{user_id}", "user_id")]
    assert "@" in user["pattern"] and "principal name" in user["description"]  # an id or a UPN
    assert params[("/datasources/{datasource_id}/users", "datasource_id")]["type"] == "integer"
    member = doc["components"]["schemas"]["AddMemberBody"]["properties"]["user_id"]
    assert member["format"] == "uuid"


def test_every_error_code_the_api_can_answer_is_in_the_document(app: Flask, client: FlaskClient,
                                                                 admin_user: User,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import api.views

    codes = set(_error_schema(client.get("/api/v1/openapi.json").get_json())["code"]["enum"])
    assert {"internal_error", "method_not_allowed", "not_found", "rate_limited", "invalid_field"} <= codes

    def broken(user: User) -> list[Datasource]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(api.views, "usable_datasources", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    answer = client.get("/api/v1/datasources", headers=bearer(api_key_for(admin_user)))
    assert answer.status_code == 500 and answer.get_json()["error"]["code"] in codes
    assert "reference" in _error_schema(client.get("/api/v1/openapi.json").get_json())


def test_a_request_that_does_not_match_the_document_names_the_field(client: FlaskClient, admin_user: User) -> None:
    h = bearer(api_key_for(admin_user))
    base = "/api/v1/datasources/1"
    cases = [
        (client.get(f"{base}/users?page_size=abc", headers=h), "page_size", "'page_size' must be a whole number."),
        (client.get(f"{base}/users?page_size=0", headers=h), "page_size", "between 1 and 999"),
        (client.get(f"{base}/users/find?q=x&mode=fuzzy", headers=h), "mode", "'prefix' or 'search'"),
        (client.get(f"{base}/groups?member_count=perhaps", headers=h), "member_count", "true or false"),
        (client.get(f"{base}/users/find", headers=h), "q", "'q' is required."),
        (client.post(f"{base}/groups", headers=h, json={"display_name": "X", "members": ["nope"]}), "members",
         "'nope' is not a valid member: a directory object id"),
        (client.post(f"{base}/users/adele@contoso.example/licences", headers=h, json={"sku_id": 5}), "sku_id",
         "'sku_id' must be a string."),
    ]
    for answer, field, fragment in cases:
        error = answer.get_json()["error"]
        assert (answer.status_code, error["code"], error["field"]) == (422, "invalid_field", field), error
        assert fragment in error["message"], error
