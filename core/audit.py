"""One call to record who did what: `record(action, target, outcome=..., **detail)`, committed by the caller.

Writing the row cannot fail on what it says: text is made storable (lone surrogates and NUL become U+FFFD, each
field is cut to its column), and `detail` is made plain JSON (dates as ISO text, sets as lists, anything else as
its text), so an audited write is never refused, or committed, for want of its audit row.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

from flask import has_request_context, request
from flask_login import current_user

from core.extensions import db
from core.models import AuditEvent

SECRET_HINTS = ("password", "secret", "token", "key")
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_DETAIL_DEPTH = 16
MAX_DETAIL_TEXT = 4000


def _redact(detail: dict[str, Any]) -> dict[str, Any]:
    """Never let a secret reach the audit trail, whatever a caller passes."""
    return {
        key: "[redacted]" if any(hint in key.lower() for hint in SECRET_HINTS) else value
        for key, value in detail.items()
    }


def current_actor() -> str:
    if has_request_context() and getattr(current_user, "is_authenticated", False):
        return current_user.email
    return "system"


def storable(text: object, limit: int | None = None) -> str:
    """`text` as a string any database stores: no NUL, no lone surrogate, at most `limit` characters."""
    value = UNSTORABLE.sub("\ufffd", text if isinstance(text, str) else str(text))
    return value if limit is None else value[:limit]


def plain_json(value: Any, depth: int = 0) -> Any:
    """`value` as JSON both databases accept (no NaN, no surrogates, string keys), whatever a caller passed."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return storable(value, MAX_DETAIL_TEXT)
    if isinstance(value, bytes):
        return storable(value.decode("utf-8", "replace"), MAX_DETAIL_TEXT)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if depth >= MAX_DETAIL_DEPTH:
        return storable(repr(value), MAX_DETAIL_TEXT)
    if isinstance(value, dict):
        return {storable(key, 256): plain_json(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(item, depth + 1) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((plain_json(item, depth + 1) for item in value), key=repr)
    return storable(value, MAX_DETAIL_TEXT)


def record(action: str, target: str = "", *, outcome: str = "success", actor: str | None = None,
           datasource: str | None = None, operation: str | None = None, **detail: Any) -> AuditEvent:
    """Add the audit row to the current transaction; the caller commits it with the change it describes."""
    client_ip = request.remote_addr if has_request_context() else None
    event = AuditEvent(
        actor=storable(actor or current_actor(), 320),
        action=storable(action, 64),
        target=storable(target or "", 512),
        outcome=storable(outcome, 32),
        detail=plain_json(_redact(detail)),
        client_ip=storable(client_ip, 64) if client_ip else None,
        datasource=storable(datasource, 100) if datasource is not None else None,
        operation=storable(operation, 64) if operation is not None else None,
    )
    db.session.add(event)
    return event
