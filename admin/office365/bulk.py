"""Office 365 > Bulk: a selection (pasted users, checked rows or "all N matching" of a list, a group's members) is
previewed as counts and the objects that would change, then queued as a background job whose page shows live
progress, per-object outcomes, Cancel and Retry the failed (bulk.service does the work; docs/selection.md is what
list pages post)."""

from __future__ import annotations

import re
from typing import Any

from flask import abort, flash, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response

from admin.office365.common import ActionForm, attempt, caller, datasource, message_of, page, route
from bulk import service
from bulk.models import BulkJob
from core.models import Datasource
from office365 import operations as ops
from office365.bulk_preview import REASONS
from office365.errors import FieldError, Office365Error

PER_PAGE = 50
FILTERS = (("", "All"), ("pending", "Waiting"), ("failed", "Failed"))


def _group_key() -> str:
    return (request.values.get("group_id") or request.values.get("group_id_text") or "").strip()


@route("/bulk", "o365_bulk")
def o365_bulk(datasource_id: int) -> str:
    ds = datasource(datasource_id)
    return page("bulk.html", ds, "o365_bulk", jobs=service.recent_jobs(ds))


def _preview_or_error(ds: Datasource, action: str, target: str, selection: service.Selection,
                      disabled: list[str] | None = None) -> tuple[BulkJob | None, str | None]:
    try:
        return service.preview(ds, caller(), action, target, selection, disabled_plans=disabled or ()), None
    except FieldError as exc:
        return None, exc.message
    except Office365Error as exc:
        return None, message_of(exc)


def _to_job(ds: Datasource, job: BulkJob) -> Response:
    return redirect(url_for("admin.o365_bulk_job", datasource_id=ds.id, job_id=job.id), 303)


@route("/bulk/members", "o365_bulk_members", methods=("GET", "POST"))
def o365_bulk_members(datasource_id: int) -> str | Response:
    """Paste users (object ids or UPNs), pick a group, preview adding them (or removing them)."""
    ds = datasource(datasource_id)
    form = ActionForm()
    group_id, text = _group_key(), request.form.get("users", "")
    action = request.form.get("action", "add") if request.form.get("action") in ("add", "remove") else "add"
    context: dict[str, Any] = {"group_id": group_id, "users_text": text, "error": None, "field_errors": {},
                               "action": action}
    if request.method == "POST" and form.validate_on_submit():
        keys = [k for k in re.split(r"[\s,;]+", text) if k]
        if not group_id:
            context["field_errors"]["group_id"] = "Pick the group."
        if not keys:
            context["field_errors"]["users"] = "List at least one user (object id or UPN), one per line."
        elif len(keys) > service.MAX_IDS:
            context["field_errors"]["users"] = f"At most {service.MAX_IDS} users at a time."
        if not context["field_errors"]:
            job, error = _preview_or_error(ds, action, group_id, service.Selection(ids=tuple(dict.fromkeys(keys))))
            if job is not None:
                return _to_job(ds, job)
            context["error"] = error
    return page("bulk_members.html", ds, "o365_bulk", form=form, **context)


@route("/bulk/licences", "o365_bulk_licences", methods=("GET", "POST"))
def o365_bulk_licences(datasource_id: int) -> str | Response:
    """A licence for every user member of a group (the group's members are the selection)."""
    ds = datasource(datasource_id)
    form = ActionForm()
    group_id, sku_id = _group_key(), request.form.get("sku_id", "")
    disabled = [v.split(":", 1)[1] for v in request.form.getlist("disabled_plans") if v.startswith(f"{sku_id}:")]
    plans, error = attempt(ds, "list_licence_plans", ops.list_licence_plans)
    context: dict[str, Any] = {"group_id": group_id, "sku_id": sku_id, "field_errors": {},
                               "chosen": set(request.form.getlist("disabled_plans"))}
    if request.method == "POST" and form.validate_on_submit():
        if not group_id:
            context["field_errors"]["group_id"] = "Pick the group."
        if not sku_id:
            context["field_errors"]["sku_id"] = "Pick a licence plan."
        if not context["field_errors"]:
            try:
                selection = service.checked_selection((), f"group:{group_id}")
            except FieldError as exc:
                context["field_errors"]["group_id"] = exc.message
            else:
                job, error = _preview_or_error(ds, "assign-licence", sku_id, selection, disabled)
                if job is not None:
                    return _to_job(ds, job)
    return page("bulk_licences.html", ds, "o365_bulk", form=form, plans=plans, error=error, **context)


def _posted_selection() -> dict[str, Any]:
    """The selection fields as posted (docs/selection.md), kept to post them again (target chosen, Try again)."""
    count = request.form.get("count", "")
    action, target = request.form.get("action", ""), (request.form.get("target") or "").strip()
    if action == "remove" and not target:  # "Remove from group" on a group's page: that group
        target = (request.form.get("this_group") or "").strip()
    return {"action": action, "target": target,
            "ids": request.form.getlist("ids"), "source": request.form.get("source", ""),
            "q": request.form.get("q", ""), "filter": request.form.getlist("filter"),
            "count": int(count) if count.isdigit() else None, "return_to": _safe_return(request.form.get("return_to"))}


def _safe_return(value: str | None) -> str | None:
    """Only a path of this site (a list page) may be linked back to."""
    if value and value.startswith("/admin/") and "//" not in value and "\\" not in value:
        return value
    return None


@route("/bulk/preview", "o365_bulk_preview", methods=("POST",))
def o365_bulk_preview(datasource_id: int) -> str | Response:
    """The list pages' selection (docs/selection.md): preview it, or ask for the target first."""
    ds = datasource(datasource_id)
    form = ActionForm()
    posted = _posted_selection()
    context: dict[str, Any] = {"posted": posted, "error": None, "retry": False, "plans": None}
    if not form.validate_on_submit():
        abort(400)
    try:
        service.checked_action(posted["action"])
        selection = service.checked_selection(posted["ids"], posted["source"] or None, posted["q"],
                                              posted["filter"], posted["count"])
    except FieldError as exc:
        context["error"] = exc.message
        return page("bulk_target.html", ds, "o365_bulk", form=form, **context)
    context["selection"] = selection
    if posted["target"]:
        job, error = _preview_or_error(ds, posted["action"], posted["target"], selection)
        if job is not None:
            return _to_job(ds, job)
        context.update(error=error, retry=True)
    if posted["action"] in ("assign-licence", "remove-licence"):
        context["plans"], plan_error = attempt(ds, "list_licence_plans", ops.list_licence_plans)
        context["error"] = context["error"] or (message_of(plan_error) if plan_error else None)
    return page("bulk_target.html", ds, "o365_bulk", form=form, **context)


def _job(ds: Datasource, job_id: int) -> BulkJob:
    job = service.job_for(ds, job_id)
    if job is None:
        abort(404)
    return job


@route("/bulk/jobs/<int:job_id>", "o365_bulk_job")
def o365_bulk_job(datasource_id: int, job_id: int) -> str:
    ds = datasource(datasource_id)
    job = _job(ds, job_id)
    service.check_alive(job)
    show = request.args.get("show", "")
    page_no = request.args.get("page", "1")
    page_no = int(page_no) if page_no.isdigit() and 0 < int(page_no) < 10**6 else 1
    items, matching = service.items_page(job, outcome=show or None, page=page_no, per_page=PER_PAGE)
    return page("bulk_job.html", ds, "o365_bulk", form=ActionForm(), job=job, status=service.status(job),
                items=items, matching=matching, show=show, page_no=page_no, per_page=PER_PAGE, filters=FILTERS,
                labels=service.OUTCOME_LABELS, reasons=REASONS)


@route("/bulk/jobs/<int:job_id>/status", "o365_bulk_job_status")
def o365_bulk_job_status(datasource_id: int, job_id: int) -> Response:
    ds = datasource(datasource_id)
    job = _job(ds, job_id)
    service.check_alive(job)
    return jsonify(service.status(job))


def _job_action(datasource_id: int, job_id: int, act: str) -> Response:
    ds = datasource(datasource_id)
    job = _job(ds, job_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        if act == "queue":
            service.queue(job, caller())
        elif act == "cancel":
            service.cancel(job)
        else:
            job = service.retry_failed(job, caller())
    except service.NotQueueable as exc:
        flash(str(exc), "warning")
    return _to_job(ds, job)


@route("/bulk/jobs/<int:job_id>/queue", "o365_bulk_job_queue", methods=("POST",))
def o365_bulk_job_queue(datasource_id: int, job_id: int) -> Response:
    return _job_action(datasource_id, job_id, "queue")


@route("/bulk/jobs/<int:job_id>/cancel", "o365_bulk_job_cancel", methods=("POST",))
def o365_bulk_job_cancel(datasource_id: int, job_id: int) -> Response:
    return _job_action(datasource_id, job_id, "cancel")


@route("/bulk/jobs/<int:job_id>/retry", "o365_bulk_job_retry", methods=("POST",))
def o365_bulk_job_retry(datasource_id: int, job_id: int) -> Response:
    return _job_action(datasource_id, job_id, "retry")
