"""The /api/v1/ routes: datasources, the ten Office 365 operations and the two bulk ones."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request

from api import bp
from api.auth import SAFE_METHODS, AuthError, authenticate
from api.errors import error_json, office365_error, to_json
from api.service import Caller, DatasourceUnavailable, datasource_for, refuse, run, usable_datasources
from core import audit
from core.models import Datasource
from office365 import operations as ops
from office365.errors import Office365Error

PUBLIC_ENDPOINTS = {"api.openapi_json", "api.openapi_page"}


class InputError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@bp.before_request
def _authenticate() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    g.caller = authenticate()


@bp.errorhandler(AuthError)
def _auth_error(exc: AuthError) -> tuple[Response, int]:
    if exc.key is not None and request.method not in SAFE_METHODS:
        # A write attempted with a known key that may no longer be used: a refused write, for the audit trail.
        audit.record("api.refused", f"{request.method} {request.path}"[:512], outcome="refused",
                     actor=Caller(exc.key.user, exc.key).actor, error_code=exc.code, message=exc.message)
    response, status = error_json(exc.status, exc.code, exc.message)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response, status


@bp.errorhandler(DatasourceUnavailable)
def _unavailable(exc: DatasourceUnavailable) -> tuple[Response, int]:
    return error_json(exc.status, exc.code, exc.message)


@bp.errorhandler(InputError)
def _input_error(exc: InputError) -> tuple[Response, int]:
    return error_json(422, "invalid_field", exc.message, field=exc.field)


@bp.errorhandler(Office365Error)
def _office365_error(exc: Office365Error) -> tuple[Response, int]:
    return office365_error(exc)


# -- helpers ---------------------------------------------------------------------------------------------------


def _datasource(datasource_id: int, name: str, target: str = "", summary: dict[str, Any] | None = None) -> Datasource:
    """The datasource for this caller; a refused write is audited before it is refused."""
    try:
        return datasource_for(g.caller.user, datasource_id)
    except DatasourceUnavailable as exc:
        refuse(None if exc.status == 404 else _lookup(datasource_id), g.caller, name, target, summary or {},
               exc.message, exc.code)
        raise


def _lookup(datasource_id: int) -> Datasource | None:
    from core.extensions import db

    return db.session.get(Datasource, datasource_id)


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InputError("body", "Send a JSON object with Content-Type: application/json.")
    return data


def _text(data: dict[str, Any], name: str, *, required: bool = True, default: str | None = None) -> str | None:
    value = data.get(name, default)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InputError(name, f"'{name}' is required (a string).")
    return value.strip()


def _strings(data: dict[str, Any], name: str, *, limit: int = 1000) -> list[str]:
    value = data.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(name, f"'{name}' must be a list of strings.")
    if len(value) > limit:
        raise InputError(name, f"'{name}' may hold at most {limit} items.")
    return value


def _paging() -> dict[str, Any]:
    size = request.args.get("page_size", "")
    kwargs: dict[str, Any] = {"cursor": request.args.get("cursor") or None}
    if size:
        if not size.isdigit():
            raise InputError("page_size", "page_size must be a whole number between 1 and 999.")
        kwargs["page_size"] = int(size)
    return kwargs


def _member_count() -> bool:
    return request.args.get("member_count", "true").lower() != "false"


def _mode() -> Any:
    mode = request.args.get("mode", "prefix")
    if mode not in ("prefix", "search"):
        raise InputError("mode", "mode must be 'prefix' or 'search'.")
    return mode


def _ok(value: Any, status: int = 200) -> tuple[Response, int]:
    return jsonify(to_json(value)), status


# -- datasources -----------------------------------------------------------------------------------------------


@bp.get("/datasources")
def datasources() -> tuple[Response, int]:
    return _ok({"datasources": [
        {"id": ds.id, "name": ds.name, "status": ds.status, "read_write": ds.read_write,
         "tenant_name": ds.tenant_name}
        for ds in usable_datasources(g.caller.user)]})


# -- users -----------------------------------------------------------------------------------------------------


@bp.get("/datasources/<int:datasource_id>/users")
def list_users(datasource_id: int) -> tuple[Response, int]:
    ds = _datasource(datasource_id, "list_users")
    kwargs = _paging()
    return _ok(run(ds, g.caller, "list_users", "", {}, lambda a: ops.list_users(a, **kwargs)))


@bp.get("/datasources/<int:datasource_id>/users/find")
def find_users(datasource_id: int) -> tuple[Response, int]:
    ds = _datasource(datasource_id, "find_users")
    query, mode, kwargs = request.args.get("q", ""), _mode(), _paging()
    return _ok(run(ds, g.caller, "find_users", "", {}, lambda a: ops.find_users(a, query, mode=mode, **kwargs)))


@bp.get("/datasources/<int:datasource_id>/users/<user_id>")
def get_user(datasource_id: int, user_id: str) -> tuple[Response, int]:
    ds = _datasource(datasource_id, "list_users")

    def call(a: ops.GraphAccess) -> dict[str, Any]:
        return {"user": ops.get_user(a, user_id), "licences": ops.user_licences(a, user_id),
                "groups": ops.user_groups(a, user_id)}

    return _ok(run(ds, g.caller, "list_users", "", {}, call))


# -- groups ----------------------------------------------------------------------------------------------------


@bp.get("/datasources/<int:datasource_id>/groups")
def list_groups(datasource_id: int) -> tuple[Response, int]:
    ds = _datasource(datasource_id, "list_groups")
    kwargs = _paging()
    counted = _member_count()
    return _ok(run(ds, g.caller, "list_groups", "", {},
                   lambda a: ops.list_groups(a, with_member_count=counted, **kwargs)))


@bp.get("/datasources/<int:datasource_id>/groups/find")
def find_groups(datasource_id: int) -> tuple[Response, int]:
    ds = _datasource(datasource_id, "find_groups")
    query, mode, kwargs = request.args.get("q", ""), _mode(), _paging()
    counted = _member_count()
    return _ok(run(ds, g.caller, "find_groups", "", {},
                   lambda a: ops.find_groups(a, query, mode=mode, with_member_count=counted, **kwargs)))


@bp.get("/datasources/<int:datasource_id>/groups/<group_id>")
def get_group(datasource_id: int, group_id: str) -> tuple[Response, int]:
    ds = _datasource(datasource_id, "list_groups")
    kwargs = _paging()

    def call(a: ops.GraphAccess) -> dict[str, Any]:
        return {"group": ops.get_group(a, group_id), "members": ops.list_group_members(a, group_id, **kwargs)}

    return _ok(run(ds, g.caller, "list_groups", "", {}, call))


@bp.post("/datasources/<int:datasource_id>/groups")
def create_group(datasource_id: int) -> tuple[Response, int]:
    data = _body()
    summary = {k: data.get(k) for k in ("display_name", "mail_nickname", "group_type")}
    ds = _datasource(datasource_id, "create_group", str(data.get("display_name", "")), summary)
    group_type = _text(data, "group_type", default="security") or "security"
    if group_type not in {t.value for t in ops.GroupType}:
        raise InputError("group_type", "group_type must be 'security' or 'microsoft365'.")
    new = ops.NewGroup(
        display_name=_text(data, "display_name") or "",
        group_type=ops.GroupType(group_type),
        mail_nickname=_text(data, "mail_nickname", required=False),
        description=_text(data, "description", required=False),
        owners=tuple(_strings(data, "owners", limit=20)),
        members=tuple(_strings(data, "members")),
    )
    summary.update(owners=len(new.owners), members=len(new.members))
    result = run(ds, g.caller, "create_group", new.display_name, summary, lambda a: ops.create_group(a, new),
                 outcome_of=lambda r: {"group_id": r.group.id, "mail_nickname": r.group.mail_nickname})
    return _ok(result, 201)


@bp.post("/datasources/<int:datasource_id>/groups/<group_id>/members")
def add_user_to_group(datasource_id: int, group_id: str) -> tuple[Response, int]:
    data = _body()
    user_id = str(data.get("user_id", ""))
    target = f"group {group_id} / user {user_id}"
    ds = _datasource(datasource_id, "add_user_to_group", target, {"group_id": group_id, "user_id": user_id})
    _text(data, "user_id")
    result = run(ds, g.caller, "add_user_to_group", target, {"group_id": group_id, "user_id": user_id},
                 lambda a: ops.add_user_to_group(a, group_id, user_id), outcome_of=lambda r: {"result": r.outcome})
    return _ok(result, 201 if result.outcome == "added" else 200)


@bp.delete("/datasources/<int:datasource_id>/groups/<group_id>/members/<user_id>")
def remove_user_from_group(datasource_id: int, group_id: str, user_id: str) -> tuple[Response, int]:
    target = f"group {group_id} / user {user_id}"
    summary = {"group_id": group_id, "user_id": user_id}
    ds = _datasource(datasource_id, "remove_user_from_group", target, summary)
    return _ok(run(ds, g.caller, "remove_user_from_group", target, summary,
                   lambda a: ops.remove_user_from_group(a, group_id, user_id),
                   outcome_of=lambda r: {"result": r.outcome}))


# -- licences --------------------------------------------------------------------------------------------------


@bp.get("/datasources/<int:datasource_id>/licences")
def list_licence_plans(datasource_id: int) -> tuple[Response, int]:
    ds = _datasource(datasource_id, "list_licence_plans")
    plans = run(ds, g.caller, "list_licence_plans", "", {}, ops.list_licence_plans)
    body = to_json(plans)
    for plan, out in zip(plans.plans, body["plans"], strict=True):
        out["available_units"] = plan.available_units
    return jsonify(body), 200


@bp.post("/datasources/<int:datasource_id>/users/<user_id>/licences")
def assign_licence(datasource_id: int, user_id: str) -> tuple[Response, int]:
    data = _body()
    sku_id = str(data.get("sku_id", ""))
    summary = {"user_id": user_id, "sku_id": sku_id, "disabled_plans": data.get("disabled_plans") or [],
               "usage_location": data.get("usage_location")}
    target = f"user {user_id} / sku {sku_id}"
    ds = _datasource(datasource_id, "assign_licence", target, summary)
    _text(data, "sku_id")
    disabled = _strings(data, "disabled_plans", limit=100)
    location = _text(data, "usage_location", required=False)
    result = run(ds, g.caller, "assign_licence", target, summary,
                 lambda a: ops.assign_licence(a, user_id, sku_id, disabled_plans=disabled,
                                              set_usage_location=location or None),
                 outcome_of=lambda r: {"result": r.outcome, "usage_location_set": r.usage_location_set})
    return _ok(result)


@bp.delete("/datasources/<int:datasource_id>/users/<user_id>/licences/<sku_id>")
def remove_licence(datasource_id: int, user_id: str, sku_id: str) -> tuple[Response, int]:
    target = f"user {user_id} / sku {sku_id}"
    summary = {"user_id": user_id, "sku_id": sku_id}
    ds = _datasource(datasource_id, "remove_licence", target, summary)
    return _ok(run(ds, g.caller, "remove_licence", target, summary, lambda a: ops.remove_licence(a, user_id, sku_id),
                   outcome_of=lambda r: {"result": r.outcome}))


# -- bulk ------------------------------------------------------------------------------------------------------


def _bulk_outcome(result: ops.BulkResult) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for item in result.items:
        counts[item.outcome] = counts.get(item.outcome, 0) + 1
    failed = [{"id": i.id, "outcome": i.outcome, "request_id": i.request_id} for i in result.failed][:50]
    return {"counts": counts, "graph_requests": result.graph_requests, "failed": failed,
            "request_id": next((i.request_id for i in result.items if i.request_id), None)}


def _bulk_json(result: ops.BulkResult) -> dict[str, Any]:
    body = to_json(result)
    body["counts"] = _bulk_outcome(result)["counts"]
    return body


@bp.post("/datasources/<int:datasource_id>/bulk/group-members")
def bulk_add_users_to_group(datasource_id: int) -> tuple[Response, int]:
    data = _body()
    group_id = str(data.get("group_id", ""))
    user_ids = _strings(data, "user_ids", limit=5000)
    summary = {"group_id": group_id, "users": len(user_ids)}
    ds = _datasource(datasource_id, "add_users_to_group", f"group {group_id}", summary)
    _text(data, "group_id")
    result = run(ds, g.caller, "add_users_to_group", f"group {group_id}", summary,
                 lambda a: ops.add_users_to_group(a, group_id, user_ids), outcome_of=_bulk_outcome)
    return jsonify(_bulk_json(result)), 200


@bp.post("/datasources/<int:datasource_id>/bulk/group-licences")
def bulk_assign_licence(datasource_id: int) -> tuple[Response, int]:
    data = _body()
    group_id, sku_id = str(data.get("group_id", "")), str(data.get("sku_id", ""))
    dry_run = bool(data.get("dry_run", False))
    disabled = _strings(data, "disabled_plans", limit=100)
    summary = {"group_id": group_id, "sku_id": sku_id, "disabled_plans": disabled}
    target = f"group {group_id} / sku {sku_id}"
    ds = _datasource(datasource_id, "assign_licence_to_group_members", target, summary)
    _text(data, "group_id")
    _text(data, "sku_id")
    result = run(ds, g.caller, "assign_licence_to_group_members", target, summary,
                 lambda a: ops.assign_licence_to_group_members(a, group_id, sku_id, disabled_plans=disabled,
                                                               dry_run=dry_run),
                 audit_it=not dry_run, outcome_of=_bulk_outcome)
    return jsonify(_bulk_json(result)), 200
