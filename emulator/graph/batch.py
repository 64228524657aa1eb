"""JSON batching: POST /$batch (docs/microsoft.md §7). Each item is dispatched through this app's own routes in a fresh
request context, so it gets its own auth, scope checks, fault injection, counters, status, headers and body."""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import Response, current_app, request
from werkzeug.test import EnvironBuilder

from emulator.graph import bp, common
from emulator.graph.errors import GraphError, error_body

MAX_REQUESTS = 20
_METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}
_DROP_HEADERS = {"content-length", "strict-transport-security", "x-ms-ags-diagnostic"}


def _invalid(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def _validate(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not items:
        raise _invalid("Invalid batch payload format.")
    if len(items) > MAX_REQUESTS:
        raise _invalid(f"The number of requests in a batch exceeds the limit of {MAX_REQUESTS}.")
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise _invalid("Invalid batch payload format: every request needs an 'id'.")
        if item["id"] in seen:
            raise _invalid(f"Request Id '{item['id']}' is used more than once in the batch.")
        if str(item.get("method", "")).upper() not in _METHODS:
            raise _invalid(f"Invalid or missing 'method' for request id '{item['id']}'.")
        url = item.get("url")
        if not isinstance(url, str) or not url or "://" in url:
            raise _invalid(f"Invalid 'url' for request id '{item['id']}': it must be relative to the version root.")
        if url.lstrip("/").split("?")[0].rstrip("/") == "$batch":
            raise _invalid(f"Request id '{item['id']}' is a nested batch, which is not supported.")
        depends = item.get("dependsOn") or []
        if not isinstance(depends, list) or any(d not in seen for d in depends):
            raise _invalid(f"Invalid 'dependsOn' for request id '{item['id']}': it must name requests that come "
                           "earlier in the batch.")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict):
            raise _invalid(f"Invalid 'headers' for request id '{item['id']}'.")
        if "body" in item and not any(k.lower() == "content-type" for k in headers):
            raise _invalid(f"Content-Type header must be specified for request id '{item['id']}' with a body.")
        seen.add(item["id"])
    return items


def _dispatch(item: dict[str, Any]) -> dict[str, Any]:
    url = item["url"] if item["url"].startswith("/") else "/" + item["url"]
    path, _, query = url.partition("?")
    headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
    headers["Authorization"] = request.headers.get("Authorization", "")
    body = item.get("body")
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    environ = EnvironBuilder(path="/v1.0" + path, query_string=query, method=item["method"].upper(),
                             headers=headers, data=data, base_url=request.host_url).get_environ()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        with app.app_context(), app.request_context(environ):
            resp = app.full_dispatch_request()
            status = resp.status_code
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in _DROP_HEADERS}
            raw = resp.get_data()
    except Exception:  # an item failing must not fail the whole batch
        current_app.logger.exception("batch item %s failed", item["id"])
        return {"id": item["id"], "status": 500, "headers": {"Content-Type": "application/json"},
                "body": error_body("generalException", "An unexpected error occurred in the batch item.")}
    result: dict[str, Any] = {"id": item["id"], "status": status, "headers": out_headers}
    if raw:
        ctype = out_headers.get("Content-Type", "")
        if "json" in ctype:
            result["body"] = json.loads(raw)
        else:  # Graph base64-encodes bodies that are not JSON (e.g. the text/plain of $count)
            result["body"] = base64.b64encode(raw).decode("ascii")
    return result


@bp.post("/$batch")
def batch() -> Response:
    items = _validate(common.json_body().get("requests"))
    results: dict[str, dict[str, Any]] = {}
    for item in items:
        depends = item.get("dependsOn") or []
        if any(results[d]["status"] >= 400 for d in depends):
            results[item["id"]] = {"id": item["id"], "status": 424, "headers": {"Content-Type": "application/json"},
                                   "body": error_body("FailedDependency",
                                                      "The request failed because of a failed dependent request.")}
            continue
        results[item["id"]] = _dispatch(item)
    return common.odata_json({"responses": [results[i["id"]] for i in items]})
