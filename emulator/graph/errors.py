"""Microsoft Graph error responses (docs/microsoft.md §7) and the per-request ids every Graph answer carries."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from flask import Response, g, has_request_context, request

from emulator import clock


class GraphError(Exception):
    """Raised inside Graph handlers; the blueprint turns it into `graph_error(...)`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def request_ids() -> tuple[str, str]:
    """(request-id, client-request-id) for the current request; the client's id is echoed when sent."""
    if not has_request_context():
        rid = str(uuid.uuid4())
        return rid, rid
    rid = g.get("graph_request_id")
    if rid is None:
        rid = str(uuid.uuid4())
        g.graph_request_id = rid
    crid = request.headers.get("client-request-id") or rid
    return rid, crid


def error_date() -> str:
    return datetime.fromtimestamp(clock.now(), UTC).strftime("%Y-%m-%dT%H:%M:%S")


def error_body(code: str, message: str) -> dict:
    rid, crid = request_ids()
    return {"error": {"code": code, "message": message,
                      "innerError": {"date": error_date(), "request-id": rid, "client-request-id": crid}}}


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """Microsoft's exact error body with `request-id` / `client-request-id` headers."""
    body = error_body(code, message)
    resp = Response(json.dumps(body), status=status, content_type="application/json")
    inner = body["error"]["innerError"]
    resp.headers["request-id"] = inner["request-id"]
    resp.headers["client-request-id"] = inner["client-request-id"]
    resp.headers["Cache-Control"] = "no-cache"
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def not_found(ref: str) -> GraphError:
    return GraphError(404, "Request_ResourceNotFound",
                      f"Resource '{ref}' does not exist or one of its queried reference-property objects "
                      "are not present.")


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    return GraphError(400, code, message)


def unsupported_query(message: str) -> GraphError:
    return GraphError(400, "Request_UnsupportedQuery", message)


def forbidden() -> GraphError:
    return GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
