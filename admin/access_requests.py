"""Administration > Access requests: requests to join a group that would open a protected page (made from the
denied page). Administrators see all of them; an Office 365 group's owners who are gateway users see those for
their groups (owners read from Graph; checked again when they decide). Approve runs Add User to Group through the
datasource (audited); a Graph failure is shown and the request stays pending. Refuse takes an optional note the
requester reads."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Length, Optional

from admin import bp, connection_user_view
from core.errors import error_response
from core.extensions import db
from sso import access_requests as service
from sso.models import AccessRequest


class DecideForm(FlaskForm):
    note = StringField("Note to the requester", validators=[Optional(), Length(max=500)],
                       description="Optional; shown to the requester with the refusal.")


for _endpoint in ("access_requests", "access_request_approve", "access_request_refuse"):
    connection_user_view(_endpoint)  # open to any signed-in user: the views show and allow only what they may decide


@bp.get("/access-requests")
def access_requests() -> str:
    user = current_user._get_current_object()
    return render_template("admin/access_requests.html", pending=service.for_approver(user),
                           decided=service.for_approver(user, status="decided", limit=50),
                           is_admin=service.is_administrator(user), form=DecideForm())


def _request(request_id: int) -> AccessRequest:
    found = db.session.get(AccessRequest, request_id)
    if found is None:
        abort(404)
    return found


def _decide(request_id: int) -> tuple[AccessRequest, Any]:
    req = _request(request_id)
    back = redirect(url_for("admin.access_requests"))
    if not DecideForm().validate_on_submit():
        flash("The form expired or the note is too long. Try again.", "danger")
        return req, back
    if req.status != AccessRequest.PENDING:
        flash(f"This request was already {req.status} by {req.decided_by}.", "info")
        return req, back
    allowed, why = service.may_decide(current_user._get_current_object(), req)
    if not allowed:
        db.session.rollback()
        return req, error_response(403, why)
    return req, None


@bp.post("/access-requests/<id:request_id>/approve")
def access_request_approve(request_id: int) -> Any:
    req, stop = _decide(request_id)
    if stop is not None:
        return stop
    done, message = service.approve(req, current_user._get_current_object())
    flash(message, "success" if done else "danger")
    return redirect(url_for("admin.access_requests"))


@bp.post("/access-requests/<id:request_id>/refuse")
def access_request_refuse(request_id: int) -> Any:
    req, stop = _decide(request_id)
    if stop is not None:
        return stop
    service.refuse(req, current_user._get_current_object(), DecideForm().note.data or "")
    flash(f"Refused: {req.requester_label} was told.", "info")
    return redirect(url_for("admin.access_requests"))


@bp.app_context_processor
def access_request_navigation() -> dict:
    """The menu's Access requests link: for Administrators, and for group owners with requests to decide."""
    def count() -> int:
        try:
            return service.pending_count_for(current_user)
        except Exception:  # noqa: BLE001 - an error page must still render when the database is the problem
            return 0

    return {"access_requests_pending": count}
