"""Office 365 errors as HTTP answers: one stable `code` (the error's `error_code`) and the right status."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from pydantic import ValidationError

from api.schemas import ApiModel
from office365 import errors as e

# Most specific first: isinstance order matters (MailNicknameTaken is a FieldError, NotAMember a GraphError...).
STATUSES: tuple[tuple[type[e.Office365Error], int], ...] = (
    (e.MailNicknameTaken, 409),
    (e.FieldError, 422),
    (e.WriteNotAllowed, 403),
    (e.UsageLocationRequired, 422),
    (e.NoSeatsLeft, 409),
    (e.ReauthorizationRequired, 409),
    (e.AlreadyMember, 409),
    (e.NotAMember, 404),
    (e.NotFound, 404),
    (e.PermissionDenied, 403),
    (e.InvalidRequest, 400),
    (e.Throttled, 429),
    (e.GraphUnavailable, 503),
    (e.GraphError, 502),
)


def status_of(exc: e.Office365Error) -> int:
    for cls, status in STATUSES:
        if isinstance(exc, cls):
            return status
    return 502


def error_json(status: int, code: str, message: str, **extra: Any) -> tuple[Response, int]:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update({k: v for k, v in extra.items() if v is not None})
    return jsonify({"error": body}), status


def office365_error(exc: e.Office365Error) -> tuple[Response, int]:
    extra: dict[str, Any] = {"request_id": exc.request_id}
    if isinstance(exc, e.FieldError):
        extra.update(field=exc.field, suggestion=exc.suggestion)
    response, status = error_json(status_of(exc), exc.error_code, exc.message, **extra)
    if status in (429, 503):
        response.headers["Retry-After"] = "60"
    return response, status


def validation_error(exc: ValidationError) -> Response:
    """A request that fails its model (api/schemas.py): 422 `invalid_field`, naming the field at fault."""

    first = exc.errors(include_url=False)[0]
    loc = first["loc"]  # (field, ...): list indexes are ints; union branches ("constrained-int") are text
    field = str(loc[0]) if loc else "body"
    model = ApiModel.registry.get(exc.title)
    schema = model.model_json_schema()["properties"].get(field, {}) if model else {}
    in_list = any(isinstance(part, int) for part in loc)
    response, status = error_json(422, "invalid_field", _explain(first, field, schema, in_list=in_list),
                                  field=field)
    response.status_code = status
    return response


_KINDS = {"string": "a string", "int": "a whole number", "bool": "true or false", "list": "a list (JSON array)",
          "model": "a JSON object", "dict": "a JSON object", "float": "a number"}


def _explain(error: Any, field: str, schema: dict[str, Any], *, in_list: bool) -> str:
    """A sentence for one Pydantic error, from the field's documented schema where it helps."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    shown = repr(value)[:80] if isinstance(value, str) else ""
    if field == "body" and kind in ("model_type", "model_attributes_type", "dict_type", "json_invalid"):
        return "Send a JSON object with Content-Type: application/json."
    if kind == "missing":
        return f"'{field}' is required."
    if kind == "extra_forbidden":
        return f"'{field}' is not a field of this request."
    if kind.endswith(("_type", "_parsing")) and kind.split("_")[0] in _KINDS:
        where = f"each item of '{field}'" if in_list else f"'{field}'"
        return f"{where} must be {_KINDS[kind.split('_')[0]]}."
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        low, high = _bounds(schema)
        return f"'{field}' must be a whole number between {low} and {high}."
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return f"'{field}' is empty: type at least one character."
        return f"'{field}' must be at least {ctx.get('min_length')} characters long."
    if kind == "string_too_long":
        return f"'{field}' is longer than {ctx.get('max_length')} characters."
    if kind == "too_long":
        return f"'{field}' may hold at most {ctx.get('max_length')} items."
    if kind == "string_pattern_mismatch":
        what = field.replace("_", " ").rstrip("s") if in_list else field.replace("_", " ")
        return f"{shown} is not a valid {what}: {_described(schema, in_list)}"
    if kind == "literal_error":
        return f"'{field}' must be one of {ctx.get('expected')}."
    return f"'{field}': {error['msg']}"


def _bounds(schema: dict[str, Any]) -> tuple[Any, Any]:
    options = [schema, *schema.get("anyOf", [])]
    low = next((o["minimum"] for o in options if "minimum" in o), "-")
    high = next((o["maximum"] for o in options if "maximum" in o), "-")
    return low, high


def _described(schema: dict[str, Any], in_list: bool) -> str:
    text = ((schema.get("items") or {}) if in_list else schema).get("description") or "see the API reference."
    return text.replace("A directory object id", "a directory object id").replace("A user's", "a user's")

