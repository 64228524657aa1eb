"""One call to record who did what: `record(action, target, outcome=..., **detail)`."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from flask_login import current_user

from core.extensions import db
from core.models import AuditEvent

SECRET_HINTS = ("password", "secret", "token", "key")


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


def record(action: str, target: str = "", *, outcome: str = "success", actor: str | None = None,
           commit: bool = True, datasource: str | None = None, operation: str | None = None,
           **detail: Any) -> AuditEvent:
    event = AuditEvent(
        actor=actor or current_actor(),
        action=action,
        target=target[:512],
        outcome=outcome,
        detail=_redact(detail),
        client_ip=request.remote_addr if has_request_context() else None,
        datasource=datasource,
        operation=operation,
    )
    db.session.add(event)
    if commit:
        db.session.commit()
    return event
