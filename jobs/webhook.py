"""On-demand runs: `POST /hooks/tasks` with the secret in an `X-Webhook-Secret` (or `Authorization: Bearer`)
header queues a run of the task whose webhook secret it is. `POST /hooks/tasks/<secret>` still works for callers
that cannot set a header, but a secret in the path lands in proxy access logs.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Blueprint, abort, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from core.extensions import csrf, db, limiter
from jobs.models import ScheduledTask
from jobs.queue import enqueue_run
from jobs.runner import create_run

bp = Blueprint("hooks", __name__, url_prefix="/hooks")


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def header_secret() -> str:
    """The secret from `X-Webhook-Secret`, else from `Authorization: Bearer ...` ("" when neither is sent)."""
    secret = request.headers.get("X-Webhook-Secret", "").strip()
    if secret:
        return secret
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


@bp.post("/tasks")
@csrf.exempt
@limiter.limit("30 per minute")
def run_task_webhook_header() -> ResponseReturnValue:
    secret = header_secret()
    if not secret:
        return jsonify(error={"code": "secret_required", "message": "Send the task's webhook secret in an "
                              "X-Webhook-Secret header (or Authorization: Bearer <secret>)."}), 401
    return _run_task(secret)


@bp.post("/tasks/<secret>")
@csrf.exempt
@limiter.limit("30 per minute")
def run_task_webhook(secret: str) -> ResponseReturnValue:
    return _run_task(secret)


def _run_task(secret: str) -> ResponseReturnValue:
    digest = secret_hash(secret)
    task = db.session.scalar(select(ScheduledTask).where(ScheduledTask.webhook_hash == digest))
    if task is None or not hmac.compare_digest(task.webhook_hash or "", digest) or task.schedule != "webhook":
        abort(404)
    if not task.enabled:
        return jsonify(error={"code": "disabled", "message": "This scheduled task is disabled."}), 409
    run = create_run(kind=task.kind, datasource_id=task.datasource_id, trigger="webhook", actor="webhook",
                     task=task, dry_run=task.dry_run)
    enqueue_run(run.id)
    return jsonify(run_id=run.id, status=run.status), 202
