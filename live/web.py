"""The notification endpoint Microsoft Graph posts to: POST /graph/notifications (change notifications) and
POST /graph/lifecycle (lifecycle notifications), on PUBLIC_BASE_URL. No session, no CSRF token (Graph has
neither): each item proves itself by its subscription and clientState (live/notifications.py).

- `?validationToken=...` (Graph's handshake when a subscription is created or moved): 200 text/plain with the
  token, before any database work.
- A notification collection: 202 once recorded, whatever each item's fate (an answer per item would tell a
  forger which subscription ids and clientStates are right); the work is a queued delta round.
- Refused before the view: an address over its refusal budget (429 with Retry-After, body unread), a body over
  LIVE_NOTIFICATION_MAX_BYTES (413); in it: what is not JSON or not `{"value": [...]}` (400). Each is recorded
  and spends the address's budget (live/refusals.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from core.extensions import csrf
from core.input import holds_forbidden_text, json_depth_exceeds
from live import refusals
from live.notifications import Malformed, Outcome, items_of, receive_any, receive_lifecycle
from live.refusals import Refusal
from live.subscriptions import LIFECYCLE_PATH, NOTIFICATION_PATH, maintain
from observability import metrics

log = logging.getLogger(__name__)

bp = Blueprint("live", __name__)
PATHS = frozenset({NOTIFICATION_PATH, LIFECYCLE_PATH})
DEFAULT_MAX_BYTES = 256 * 1024  # ~400 items of Graph's size; its batches are far smaller
MAX_TOKEN = 1024
LIFECYCLE_WAIT = 30.0  # seconds a lifecycle event's work waits for another process maintaining the datasource


def _text(body: str, status: int, **headers: str) -> Response:
    return Response(body, status=status, mimetype="text/plain", headers=headers)


def _client_ip() -> str:
    return request.remote_addr or "unknown"


def _kind() -> str:
    return "lifecycle" if request.path == LIFECYCLE_PATH else "change"


def _refuse(reason: str, detail: str, status: int) -> Response:
    refusals.record([Refusal(reason, detail)], _client_ip())
    refusals.spend(_client_ip())
    metrics.graph_notifications(_kind(), reason)
    return _text(f"Refused: {refusals.REASONS[reason]}.", status)


def guard() -> Response | None:
    """First of the app's before_request hooks, for the endpoint's POSTs only: the refusal budget, then the size
    cap (also for chunked bodies, as the later hooks read them)."""
    if request.method != "POST" or request.path not in PATHS:
        return None
    wait = refusals.retry_after(_client_ip())
    if wait:
        metrics.graph_notifications(_kind(), "limited")
        return _text("Too many refused notifications from this address; try again later.", 429,
                     **{"Retry-After": str(wait)})
    cap = int(current_app.config.get("LIVE_NOTIFICATION_MAX_BYTES", DEFAULT_MAX_BYTES))
    request.max_content_length = cap
    if request.content_length is not None and request.content_length > cap:
        return _refuse("too_large", f"{request.content_length} bytes (at most {cap})", 413)
    if request.content_length is None and len(request.get_data(cache=True)) >= cap:  # chunked: read up to the cap
        return _refuse("too_large", f"at least {cap} bytes without a Content-Length (at most {cap})", 413)
    return None


@bp.errorhandler(400)
@bp.errorhandler(413)
@bp.errorhandler(422)
def refused_body(error: HTTPException) -> Response:
    """A body the app's input checks refused on these paths (too large while read, not valid text, too deep)."""
    reason = {413: "too_large", 422: "invalid_text"}.get(error.code or 400, "malformed")
    return _refuse(reason, error.name, error.code or 400)


def _handle(receive: Callable[[list[dict[str, Any]]], Outcome]) -> Response:
    token = request.args.get("validationToken")
    if token is not None:  # Graph's handshake: the token, URL-decoded, as the whole text/plain body
        if len(token) > MAX_TOKEN:
            return _refuse("malformed", f"a validationToken of {len(token)} characters", 400)
        return _text(token, 200)
    try:
        body = json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return _refuse("malformed", "the body is not JSON", 400)
    # Declared as something else than JSON, the body escaped the app's input check: the same rules here.
    if json_depth_exceeds(body) or holds_forbidden_text(body):
        return _refuse("invalid_text", "nested too deeply, or text with NUL or lone surrogates", 422)
    try:
        items = items_of(body)
    except Malformed as exc:
        return _refuse("malformed", str(exc), 400)
    outcome = receive(items)
    refusals.record(outcome.refusals, _client_ip())
    metrics.graph_notifications(_kind(), "accepted", sum(outcome.accepted.values()))
    for refusal in outcome.refusals:
        metrics.graph_notifications(_kind(), refusal.reason, refusal.count)
    if not outcome.genuine:
        refusals.spend(_client_ip())
    response = _text("", 202)
    if outcome.maintain:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        response.call_on_close(lambda: _maintain_after(app, sorted(outcome.maintain)))
    return response


def _maintain_after(app: Flask, datasource_ids: list[int]) -> None:
    """After the answer went to Graph: reauthorize, create again, put polling on (a lifecycle event's work)."""
    with app.app_context():
        for datasource_id in datasource_ids:
            try:
                maintain(datasource_id, wait=LIFECYCLE_WAIT)
            except Exception:  # noqa: BLE001 - the next live tick tries again; this one must not stop the others
                log.exception("maintaining the subscriptions of datasource %s after a lifecycle event failed",
                              datasource_id)


@bp.post(NOTIFICATION_PATH)
def notifications() -> Response:
    return _handle(receive_any)


@bp.post(LIFECYCLE_PATH)
def lifecycle() -> Response:
    return _handle(receive_lifecycle)


def install(app: Flask) -> None:
    """Register the endpoint (CSRF-exempt) and its guard, which runs before every other before_request hook."""
    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.before_request_funcs.setdefault(None, []).insert(0, guard)
