"""Office 365 > Bulk: add many users to a group, assign a licence to every member of a group. Each shows a
preview first (nothing written), then per-user results; the writes go 20 per Graph request."""

from __future__ import annotations

import re

from flask import request
from werkzeug.wrappers import Response

from admin.office365.common import ActionForm, attempt, datasource, message_of, page, route
from office365 import operations as ops

MAX_BULK_USERS = 5000


def _group_key() -> str:
    return (request.values.get("group_id") or request.values.get("group_id_text") or "").strip()


@route("/bulk", "o365_bulk")
def o365_bulk(datasource_id: int) -> str:
    ds = datasource(datasource_id)
    return page("bulk.html", ds, "o365_bulk")


@route("/bulk/members", "o365_bulk_members", methods=("GET", "POST"))
def o365_bulk_members(datasource_id: int) -> str | Response:
    ds = datasource(datasource_id)
    form = ActionForm()
    group_id, text = _group_key(), request.form.get("users", "")
    context: dict = {"group_id": group_id, "users_text": text, "error": None, "field_errors": {}}
    if request.method == "POST" and form.validate_on_submit():
        step = request.form.get("step", "preview")
        if step == "run":
            user_ids = request.form.getlist("user_ids")
            summary = {"group_id": group_id, "users": len(user_ids)}
            result, exc = attempt(ds, "add_users_to_group", lambda a: ops.add_users_to_group(a, group_id, user_ids),
                                  f"group {group_id}", summary, outcome_of=_counts)
            group, _ = attempt(ds, "list_groups", lambda a: ops.get_group(a, group_id, with_member_count=False))
            names = dict(zip(request.form.getlist("user_ids"), request.form.getlist("user_labels"), strict=False))
            context.update(step="results", result=result, error=message_of(exc) if exc else None, group=group,
                           names=names)
        else:
            keys = [k for k in re.split(r"[\s,;]+", text) if k]
            if not group_id:
                context["field_errors"]["group_id"] = "Pick the group."
            if not keys:
                context["field_errors"]["users"] = "List at least one user (object id or UPN), one per line."
            elif len(keys) > MAX_BULK_USERS:
                context["field_errors"]["users"] = f"At most {MAX_BULK_USERS} users at a time."
            if not context["field_errors"]:
                preview, exc = attempt(ds, "list_groups", lambda a: _preview_members(a, group_id, keys))
                context.update(step="preview", preview=preview, error=message_of(exc) if exc else None)
    return page("bulk_members.html", ds, "o365_bulk", form=form, **context)


def _preview_members(access: ops.GraphAccess, group_id: str, keys: list[str]) -> dict:
    """Who would be added, who already is a member, and who cannot be found: reads only."""
    group = ops.get_group(access, group_id, with_member_count=False)
    current = {m.id.lower() for m in ops.iter_group_members(access, group.id, select="id")}
    rows = []
    for resolved in ops.resolve_users(access, keys):
        if resolved.user is None:
            rows.append({"key": resolved.key, "user": None, "status": "not_found", "message": resolved.message})
        elif resolved.user.id.lower() in current:
            rows.append({"key": resolved.key, "user": resolved.user, "status": "already_member",
                         "message": "Already a member; nothing to do."})
        else:
            rows.append({"key": resolved.key, "user": resolved.user, "status": "add", "message": "Will be added."})
    return {"group": group, "rows": rows, "to_add": [r for r in rows if r["status"] == "add"]}


@route("/bulk/licences", "o365_bulk_licences", methods=("GET", "POST"))
def o365_bulk_licences(datasource_id: int) -> str | Response:
    ds = datasource(datasource_id)
    form = ActionForm()
    group_id, sku_id = _group_key(), request.form.get("sku_id", "")
    disabled = [v.split(":", 1)[1] for v in request.form.getlist("disabled_plans") if v.startswith(f"{sku_id}:")]
    plans, error = attempt(ds, "list_licence_plans", ops.list_licence_plans)
    context: dict = {"group_id": group_id, "sku_id": sku_id, "disabled": disabled, "field_errors": {},
                     "chosen": set(request.form.getlist("disabled_plans"))}
    if request.method == "POST" and form.validate_on_submit():
        if not group_id:
            context["field_errors"]["group_id"] = "Pick the group."
        if not sku_id:
            context["field_errors"]["sku_id"] = "Pick a licence plan."
        if not context["field_errors"]:
            run_it = request.form.get("step") == "run"
            summary = {"group_id": group_id, "sku_id": sku_id, "disabled_plans": disabled}
            result, exc = attempt(
                ds, "assign_licence_to_group_members",
                lambda a: ops.assign_licence_to_group_members(a, group_id, sku_id, disabled_plans=disabled,
                                                              dry_run=not run_it),
                f"group {group_id} / sku {sku_id}", summary, audit_it=run_it, outcome_of=_counts)
            group, _ = attempt(ds, "list_groups", lambda a: ops.get_group(a, group_id, with_member_count=False))
            names = _member_names(ds, group_id) if result else {}
            error = message_of(exc) if exc else error
            context.update(step="results" if run_it else "preview", result=result, group=group, names=names,
                           plan=next((p for p in (plans.plans if plans else []) if p.sku_id == sku_id), None))
    return page("bulk_licences.html", ds, "o365_bulk", form=form, plans=plans, error=error, **context)


def _member_names(ds, group_id: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    members, _ = attempt(ds, "list_groups", lambda a: list(ops.iter_group_members(a, group_id)))
    return {m.id: f"{m.display_name} ({m.user_principal_name})" if m.user_principal_name else (m.display_name or "")
            for m in members or []}


def _counts(result: ops.BulkResult) -> dict:
    counts: dict[str, int] = {}
    for item in result.items:
        counts[item.outcome] = counts.get(item.outcome, 0) + 1
    return {"counts": counts, "graph_requests": result.graph_requests,
            "failed": [{"id": i.id, "outcome": i.outcome} for i in result.failed][:50],
            "request_id": next((i.request_id for i in result.items if i.request_id), None)}
