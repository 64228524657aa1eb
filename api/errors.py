"""Office 365 errors as HTTP answers: one stable `code` (the error's `error_code`) and the right status."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from flask import Response, jsonify

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


def to_json(value: Any) -> Any:
    """Dataclasses, enums, tuples and lists as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value
