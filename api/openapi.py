"""The OpenAPI 3 document of /api/v1/ and a readable page rendered from it (no CDN, no script)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, render_template

from api import bp

ERROR_CODES = (
    "unauthenticated", "invalid_api_key", "api_key_revoked", "api_key_expired", "user_inactive", "csrf_failed",
    "forbidden", "datasource_not_found", "datasource_not_ready", "invalid_field", "mail_nickname_taken",
    "write_not_allowed", "usage_location_required", "no_seats_left", "reauthorization_required", "already_member",
    "not_a_member", "not_found", "permission_denied", "invalid_request", "throttled", "graph_unavailable",
    "graph_error",
)

_DS = {"name": "datasource_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_PAGING = [
    {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 999}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"},
     "description": "`next_cursor` of the previous page (Graph's @odata.nextLink)."},
]
_FIND = [{"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
         {"name": "mode", "in": "query", "schema": {"type": "string", "enum": ["prefix", "search"]},
          "description": "`prefix`: startswith on name, mail and UPN (default); `search`: Graph $search tokens."}]

_COUNT = {"name": "member_count", "in": "query", "schema": {"type": "boolean", "default": True},
          "description": "`false` skips counting members (one $batch per 20 groups)."}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _op(summary: str, label: str | None, kind: str, params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, ok: str = "200", description: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "summary": summary,
        "description": description,
        "parameters": [_DS, *(params or [])],
        "responses": {ok: {"description": "Success", "content": {"application/json": {"schema": {"type": "object"}}}},
                      "default": {"$ref": "#/components/responses/Error"}},
        "x-operation-kind": kind,
    }
    if label:
        spec["x-seed-label"] = label
    if body:
        spec["requestBody"] = {"required": True,
                               "content": {"application/json": {"schema": {"type": "object", **body}}}}
    return spec


def _obj(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {"required": required, "properties": props}


_S = {"type": "string"}
_LIST = {"type": "array", "items": {"type": "string"}}


def document() -> dict[str, Any]:
    ds = "/datasources/{datasource_id}"
    return {
        "openapi": "3.0.3",
        "info": {"title": "O365 Gateway API", "version": "1",
                 "description": "The Office 365 operations of the gateway's datasources. Authenticate with "
                                "`Authorization: Bearer <API key>` (an Administrator creates keys under "
                                "Administration > API keys), or with the browser session plus an `X-CSRFToken` "
                                "header on unsafe methods. The caller must be one of the datasource's Connection "
                                "users; writes also need a read-write datasource whose grant holds the permission. "
                                "Errors are `{\"error\": {\"code\", \"message\"}}` with a stable code."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"apiKey": []}, {"session": []}],
        "paths": {
            "/datasources": {"get": {
                "summary": "Datasources you may use", "parameters": [],
                "responses": {"200": {"description": "Success"}, "default": {"$ref": "#/components/responses/Error"}}}},
            f"{ds}/users": {"get": _op("One page of users", "User List", "read", _PAGING)},
            f"{ds}/users/find": {"get": _op("Find users by name, mail or UPN", "Find Users", "read",
                                            [*_FIND, *_PAGING])},
            f"{ds}/users/{{user_id}}": {"get": _op("A user with their licences and groups", None, "read",
                                                   [_path("user_id")])},
            f"{ds}/groups": {
                "get": _op("One page of groups with type and member count", "Group List", "read",
                           [*_PAGING, _COUNT]),
                "post": _op("Create a security or Microsoft 365 group", "Create Group", "write", body=_obj(
                    ["display_name"], display_name=_S, description=_S, mail_nickname=_S,
                    group_type={"type": "string", "enum": ["security", "microsoft365"]}, owners=_LIST,
                    members=_LIST), ok="201",
                    description="A taken mail nickname answers 409 `mail_nickname_taken` with a `suggestion`."),
            },
            f"{ds}/groups/find": {"get": _op("Find groups by name, mail or nickname", "Find Groups", "read",
                                             [*_FIND, *_PAGING, _COUNT])},
            f"{ds}/groups/{{group_id}}": {"get": _op("A group and one page of its members", None, "read",
                                                     [_path("group_id"), *_PAGING])},
            f"{ds}/groups/{{group_id}}/members": {"post": _op(
                "Add a user to the group", "Add User to Group", "write", [_path("group_id")],
                _obj(["user_id"], user_id=_S), ok="201",
                description="201 `added`; 200 with outcome `already_member` when nothing had to change.")},
            f"{ds}/groups/{{group_id}}/members/{{user_id}}": {"delete": _op(
                "Remove a user from the group", "Remove User From Group", "write",
                [_path("group_id"), _path("user_id")], description="404 `not_a_member` when they are not one.")},
            f"{ds}/licences": {"get": _op("Licence plans: seats and service plans", "Licence Plan List", "read")},
            f"{ds}/users/{{user_id}}/licences": {"post": _op(
                "Assign a licence to a user", "Assign Licence to User", "write", [_path("user_id")],
                _obj(["sku_id"], sku_id=_S, disabled_plans=_LIST,
                     usage_location={"type": "string", "description": "Two-letter country code to set first "
                                                                      "when the user has none."}),
                description="422 `usage_location_required` when the user has no usage location; 409 "
                            "`no_seats_left` when the plan is full.")},
            f"{ds}/users/{{user_id}}/licences/{{sku_id}}": {"delete": _op(
                "Remove a licence from a user", "Remove Licence from User", "write",
                [_path("user_id"), _path("sku_id")])},
            f"{ds}/bulk/group-members": {"post": _op(
                "Add many users to a group (20 per Graph request), one result per user", None, "write",
                body=_obj(["group_id", "user_ids"], group_id=_S, user_ids=_LIST))},
            f"{ds}/bulk/group-licences": {"post": _op(
                "Assign a licence to every member of a group, one result per member", None, "write",
                body=_obj(["group_id", "sku_id"], group_id=_S, sku_id=_S, disabled_plans=_LIST,
                          dry_run={"type": "boolean", "description": "Preview only: nothing is written."}))},
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key: gw_<prefix>_<secret>."},
                "session": {"type": "apiKey", "in": "cookie", "name": "gw_session"},
            },
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string", "enum": list(ERROR_CODES)}, "message": _S,
                               "field": _S, "suggestion": _S, "request_id": _S}}}}},
            "responses": {"Error": {"description": "An error with a stable code", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document())


@bp.get("/docs")
def openapi_page() -> str:
    return render_template("api/docs.html", doc=document(), error_codes=ERROR_CODES)
