"""Office 365 > Licences: Licence Plan List (seats as a meter, service plans), Assign Licence to User (optional
disabled plans; usage location and seats checked first, offering to set the usage location), Remove Licence."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response

from admin.office365.common import ActionForm, attempt, datasource, flash_error, message_of, page, route
from admin.office365.groups import user_key
from office365 import operations as ops
from office365.errors import FieldError, UsageLocationRequired


@route("/licences", "o365_licences")
def o365_licences(datasource_id: int) -> str:
    ds = datasource(datasource_id)
    plans, error = attempt(ds, "list_licence_plans", ops.list_licence_plans)
    return page("licences.html", ds, "o365_licences", plans=plans, error=error)


@route("/licences/assign", "o365_licence_assign", methods=("GET", "POST"))
def o365_licence_assign(datasource_id: int) -> str | Response:
    ds = datasource(datasource_id)
    form = ActionForm()
    chosen_user = (request.args.get("user") or "").strip()
    user = None
    plans, error = attempt(ds, "list_licence_plans", ops.list_licence_plans)
    field_errors: dict[str, str] = {}
    ask_location = False
    values = {"sku_id": request.values.get("sku_id", ""), "usage_location": request.form.get("usage_location", ""),
              "disabled": set(request.form.getlist("disabled_plans"))}
    if request.method == "POST" and form.validate_on_submit():
        key, sku = user_key(), values["sku_id"]
        chosen_user = key
        if not key:
            field_errors["user_id"] = "Pick the user to licence."
        if not sku:
            field_errors["sku_id"] = "Pick a licence plan."
        if not field_errors:
            # Checkbox values are "<sku>:<plan>": only the chosen SKU's plans are sent.
            disabled = [v.split(":", 1)[1] for v in values["disabled"] if v.startswith(f"{sku}:")]
            location = values["usage_location"].strip() or None
            summary = {"user_id": key, "sku_id": sku, "disabled_plans": disabled, "usage_location": location}
            result, exc = attempt(
                ds, "assign_licence",
                lambda a: ops.assign_licence(a, key, sku, disabled_plans=disabled, set_usage_location=location),
                f"user {key} / sku {sku}", summary,
                outcome_of=lambda r: {"result": r.outcome, "usage_location_set": r.usage_location_set})
            if result is not None:
                flash(result.message + (f" Usage location set to {result.usage_location_set}."
                                        if result.usage_location_set else ""), "success")
                return redirect(url_for("admin.o365_user", datasource_id=ds.id, user_id=result.user_id))
            assert exc is not None
            if isinstance(exc, UsageLocationRequired):
                ask_location = ds.read_write
                field_errors["usage_location"] = exc.message + (
                    " Enter it below and assign again." if ask_location else
                    " This datasource is read-only: set it in the Microsoft 365 admin center.")
            elif isinstance(exc, FieldError):
                field_errors[exc.field] = exc.message
            else:
                error = message_of(exc)
    if chosen_user:
        user, _ = attempt(ds, "list_users", lambda a: ops.get_user(a, chosen_user))
        if user is not None and not user.usage_location and ds.read_write:
            ask_location = True
    return page("licence_assign.html", ds, "o365_licences", form=form, plans=plans, error=error, user=user,
                chosen_user=chosen_user, field_errors=field_errors, ask_location=ask_location, values=values)


@route("/users/<user_id>/licences/<sku_id>/remove", "o365_licence_remove", methods=("GET", "POST"))
def o365_licence_remove(datasource_id: int, user_id: str, sku_id: str) -> str | Response:
    ds = datasource(datasource_id)
    form = ActionForm()
    if form.validate_on_submit():
        result, exc = attempt(ds, "remove_licence", lambda a: ops.remove_licence(a, user_id, sku_id),
                              f"user {user_id} / sku {sku_id}", {"user_id": user_id, "sku_id": sku_id},
                              outcome_of=lambda r: {"result": r.outcome})
        if exc is not None:
            flash_error(exc)
        else:
            flash("The licence was removed from the user.", "success")
        return redirect(url_for("admin.o365_user", datasource_id=ds.id, user_id=user_id))

    def read(a: ops.GraphAccess) -> dict:
        plan = next((p for p in ops.list_licence_plans(a).plans if p.sku_id.lower() == sku_id.lower()), None)
        return {"user": ops.get_user(a, user_id), "plan": plan}

    data, error = attempt(ds, "list_users", read)
    return page("licence_remove.html", ds, "o365_licences", data=data, error=error, form=form, user_id=user_id,
                sku_id=sku_id)
