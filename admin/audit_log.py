"""Administration > Audit log: newest first, filtered by actor, action, outcome, datasource and operation (all
server-side), exportable as CSV."""

from __future__ import annotations

import re
from collections.abc import Iterable

from flask import render_template, request
from sqlalchemy import Select, func, select
from werkzeug.wrappers import Response

from admin import bp
from admin.paging import csv_response, page_args
from core.access import roles_required
from core.extensions import db
from core.models import AuditEvent, Group, Role, User

OBJECT_ID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


def _filtered() -> tuple[Select, dict[str, str]]:
    filters = {name: request.args.get(name, "").strip()
               for name in ("actor", "action", "outcome", "datasource", "operation")}
    statement = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if filters["actor"]:
        statement = statement.where(func.lower(AuditEvent.actor).like(f"%{filters['actor'].lower()}%"))
    if filters["action"]:
        statement = statement.where(AuditEvent.action.like(f"{filters['action']}%"))
    if filters["outcome"]:
        statement = statement.where(AuditEvent.outcome == filters["outcome"])
    if filters["datasource"]:
        statement = statement.where(AuditEvent.datasource == filters["datasource"])
    if filters["operation"]:
        statement = statement.where(AuditEvent.operation == filters["operation"])
    return statement, filters


@bp.get("/audit")
@roles_required(Role.ADMINISTRATOR)
def audit_log() -> str:
    statement, filters = _filtered()
    page, per_page = page_args()
    pagination = db.paginate(statement, page=page, per_page=per_page, error_out=False)
    actions = db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)).all()
    datasources, operations = (
        db.session.scalars(select(column).where(column.is_not(None)).distinct().order_by(column)).all()
        for column in (AuditEvent.datasource, AuditEvent.operation))
    return render_template("admin/audit.html", pagination=pagination, filters=filters, actions=actions,
                           datasources=datasources, operations=operations, per_page=per_page,
                           known=known_names(pagination.items))


def known_names(events: Iterable[AuditEvent]) -> dict[int, list[str]]:
    """Per event, the local names of the Office 365 objects its target names by id (in the target's order)."""
    events = list(events)
    names = local_names(event.target for event in events)
    return {event.id: [names[oid] for oid in OBJECT_ID.findall(event.target or "") if oid in names]
            for event in events}


def local_names(targets: Iterable[str]) -> dict[str, str]:
    """Office 365 object ids in `targets` that name a local user (imported or signed in) or a local group bound to
    an Office 365 group: id -> e-mail or group name. Read from our database only: the ids stay the record."""
    ids = sorted({found for target in targets for found in OBJECT_ID.findall(target or "")})
    if not ids:
        return {}
    names = dict(db.session.execute(select(User.object_id, User.email).where(User.object_id.in_(ids))).all())
    names.update(db.session.execute(select(Group.source_group_id, Group.name).where(
        Group.source_group_id.in_(ids))).all())
    return names


@bp.get("/audit.csv")
@roles_required(Role.ADMINISTRATOR)
def audit_csv() -> Response:
    statement, _ = _filtered()
    header = ("When", "Actor", "Action", "Datasource", "Operation", "Target", "Outcome", "Client IP", "Detail")
    return csv_response("audit-log.csv", header, statement, _csv_row)


def _csv_row(event: AuditEvent) -> tuple[object, ...]:
    return (event.at.isoformat(), event.actor, event.action, event.datasource or "", event.operation or "",
            event.target, event.outcome, event.client_ip or "", event.detail)
