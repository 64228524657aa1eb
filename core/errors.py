"""Error pages inside the layout, and `{"error": {"code", "message"}}` for API and JSON callers."""

from __future__ import annotations

import logging
import uuid

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from core.extensions import db

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
UNAVAILABLE_RETRY_AFTER = "5"  # seconds: Redis restarting or failing over is back within a few

# Codes of malformed input, answered on any path before a view runs (core.input, core.converters) or when input is
# nested beyond what a parser follows.
INPUT_CODES = ("invalid_text", "json_too_deep", "invalid_number", "too_deeply_nested")

MESSAGES = {
    400: "The request could not be understood. Check the form and try again.",
    401: "Sign in to continue.",
    403: "You do not have permission to open this page. Ask an Administrator if you need access.",
    404: "There is nothing at this address. Check the link, or go back to the home page.",
    405: "This address does not accept that kind of request.",
    429: "Too many attempts. Wait a minute before trying again.",
    500: "Something went wrong on our side. The error was logged; try again in a moment.",
    503: "A service the gateway needs is not answering. Try again in a moment.",
}


def _store_unavailable(error: BaseException) -> bool:
    """Redis (sessions, rate limits, job queue) cannot be reached: a 503 the caller may retry, not a 500."""
    import redis

    cause = getattr(error, "original_exception", None) or error
    return isinstance(cause, (redis.ConnectionError, redis.TimeoutError))


def unavailable_response() -> Response:
    """503 with Retry-After. A plain page, not the layout: the layout reads the session, which is what failed."""
    log.warning("Redis unavailable: %s %s answered 503", request.method, request.path)
    db.session.rollback()
    message = MESSAGES[503]
    if wants_json():
        answer = jsonify(error={"code": CODES[503], "message": message})
    else:
        answer = Response(f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Service unavailable'
                          f'</title></head><body><main><h1>Service unavailable</h1><p>{message}</p></main></body>'
                          "</html>", mimetype="text/html")
    answer.status_code = 503
    answer.headers["Retry-After"] = UNAVAILABLE_RETRY_AFTER
    answer.headers["Cache-Control"] = "no-store"
    return answer


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status: int, message: str | None = None, code: str | None = None,
                   reference: str | None = None) -> tuple[Response | str, int]:
    code = code or CODES.get(status, "error")
    message = message or MESSAGES.get(status, "The request failed.")
    if wants_json():
        body: dict = {"error": {"code": code, "message": message}}
        if reference:
            body["error"]["reference"] = reference
        return jsonify(body), status
    return render_template("errors/error.html", status=status, message=message, reference=reference), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):  # type: ignore[no-untyped-def]
        return error_response(400, "The form expired or was sent from elsewhere. Reload the page and try again.",
                              code="csrf_failed")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):  # type: ignore[no-untyped-def]
        if _store_unavailable(error):  # raised while opening or saving the session (outside the view)
            return unavailable_response()
        status = error.code or 500
        code = getattr(error, "code_name", None)  # our own exceptions name a stable code (core.input)
        message = None
        if status == 429:
            message = "Too many attempts. Wait a minute before trying again."
        elif error.description and (code or status not in MESSAGES):
            message = error.description
        response, status = error_response(status, message, code)
        if isinstance(response, Response):
            # 405 names the methods the address accepts (RFC 9110 requires `Allow`), as werkzeug's answer did.
            response.headers.extend((k, v) for k, v in error.get_headers() if k.lower() == "allow")
        if isinstance(response, Response) and getattr(error, "response", None) is not None:
            response.headers.extend(
                (k, v) for k, v in error.response.headers.items() if k.lower().startswith(("retry-after", "x-rate"))
            )
        return response, status

    @app.errorhandler(RecursionError)
    def too_deep(error: RecursionError):  # type: ignore[no-untyped-def]
        """Input nested beyond what a parser or walker can follow (e.g. JSON inside a form field)."""
        log.warning("input nested too deeply: %s %s", request.method, request.path)
        db.session.rollback()
        return error_response(400, "The input is nested too deeply to be read.", code="too_deeply_nested")

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):  # type: ignore[no-untyped-def]
        if isinstance(error, HTTPException):
            return http_error(error)
        if _store_unavailable(error):
            return unavailable_response()
        reference = uuid.uuid4().hex[:12]
        log.exception("unhandled error, reference %s", reference)
        db.session.rollback()
        return error_response(500, reference=reference)
