"""Logs: plain text (default) or `LOG_FORMAT=json`, one JSON object per line, and one access line per request.

Every request gets an id: the `X-Request-ID` a trusted proxy sent (`TRUSTED_PROXY_HOPS` > 0, and only a short
token of safe characters), else a generated one; it is echoed in the response and carried by every log line of the
request. The access line names the route's rule (`/sso/callback`), never the path or query string actually asked
for: those may carry an authorization code, a webhook secret or a state.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request, session

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
ACCESS_LOG = logging.getLogger("gateway.access")
# Libraries whose DEBUG lines carry secrets: MSAL logs each token-cache event with the authorization code in it
# (it masks tokens and secrets, not the code). They are kept at INFO whatever LOG_LEVEL says.
QUIET_BELOW_INFO = ("msal",)
# Fields a caller may pass with `extra=` that the JSON line carries as its own keys.
EXTRA_FIELDS = ("route", "method", "status", "duration", "user_id", "request_id")


def current_request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


class RequestContextFilter(logging.Filter):
    """Adds the request id and signed-in user id to records made during a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            if not hasattr(record, "request_id"):
                record.request_id = g.get("request_id")
            if not hasattr(record, "user_id"):
                record.user_id = g.get("log_user_id") or _session_user()
        return True


def _session_user() -> str | None:
    try:
        value = session.get("_user_id")
    except Exception:  # noqa: BLE001 - no session yet (a failing store): the line goes out without it
        return None
    return str(value) if value else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, pid, and the request's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which gunicorn worker or job worker
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log_format: str, level: str) -> None:
    """The root logger's one handler (stderr), in the chosen format. Replaces handlers set before by us only."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "gateway", False):
            root.removeHandler(handler)
    if root.handlers:  # someone else (a test runner, an embedding app) owns the root logger
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.gateway = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RequestContextFilter())
    root.addHandler(handler)
    root.setLevel(level)


def _request_id(trust_header: bool) -> str:
    offered = request.headers.get(REQUEST_ID_HEADER, "") if trust_header else ""
    return offered if REQUEST_ID_PATTERN.fullmatch(offered) else uuid.uuid4().hex


def install(app: Flask) -> None:
    """Request ids, the access line, and the log format (unless the app runs under a test runner)."""
    if not app.testing:
        configure(app.config.get("LOG_FORMAT", "text"), app.config.get("LOG_LEVEL", "INFO"))
    for name in QUIET_BELOW_INFO:
        if logging.getLogger(name).level < logging.INFO:  # NOTSET included: it would follow the root down
            logging.getLogger(name).setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestContextFilter) for f in handler.filters):
            handler.addFilter(RequestContextFilter())
    trust_header = bool(app.config.get("TRUSTED_PROXY_HOPS"))

    @app.before_request
    def start_request() -> None:
        g.request_started = time.perf_counter()
        g.request_id = _request_id(trust_header)

    @app.after_request
    def access_line(response: Response) -> Response:
        request_id = g.get("request_id") or _request_id(trust_header)
        response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_started")
        rule = request.url_rule.rule if request.url_rule is not None else None
        user_id = _session_user()
        if user_id is None:  # an API key's user (Flask-Login's loaded user, when one was loaded)
            loaded = g.get("_login_user")
            user_id = str(loaded.id) if getattr(loaded, "is_authenticated", False) else None
        ACCESS_LOG.info("%s %s %s", request.method, rule or "(no route)", response.status_code, extra={
            "route": rule, "method": request.method, "status": response.status_code, "request_id": request_id,
            "user_id": user_id,
            "duration": round(time.perf_counter() - started, 6) if started is not None else None})
        return response
