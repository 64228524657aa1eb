"""Office 365 > Users: User List (server-side paging through Graph cursors), Find Users, a user's page."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from admin import bp, connection_user_view
from admin.office365.common import ActionForm, attempt, datasource, page, route
from datasources.service import usable_datasources
from office365 import operations as ops


@bp.get("/o365")
def o365_index() -> str:
    """The datasources the signed-in user may run operations on (plain Users reach them from here)."""
    return render_template("admin/office365/index.html", datasources=usable_datasources(current_user))


connection_user_view("o365_index")


@route("", "o365_home")
def o365_home(datasource_id: int) -> Response:
    datasource(datasource_id)
    return redirect(url_for("admin.o365_users", datasource_id=datasource_id))


@route("/users", "o365_users")
def o365_users(datasource_id: int) -> str:
    ds = datasource(datasource_id)
    query = request.args.get("q", "").strip()
    mode = "search" if request.args.get("mode") == "search" else "prefix"
    cursor = request.args.get("cursor") or None
    if query:
        result, error = attempt(ds, "find_users",
                                lambda a: ops.find_users(a, query, mode=mode, page_size=25, cursor=cursor))
    else:
        result, error = attempt(ds, "list_users", lambda a: ops.list_users(a, page_size=25, cursor=cursor))
    plans = _plan_names(ds) if result and any(u.licence_sku_ids for u in result.users) else {}
    return page("users.html", ds, "o365_users", result=result, error=error, q=query, mode=mode, cursor=cursor,
                plans=plans)


def _plan_names(ds) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """SKU id -> SKU part number, to show licences by name (one extra read; none when it fails)."""
    plans, _ = attempt(ds, "list_licence_plans", ops.list_licence_plans)
    return {p.sku_id.lower(): p.sku_part_number for p in plans.plans} if plans else {}


@route("/users/<user_id>", "o365_user")
def o365_user(datasource_id: int, user_id: str) -> str:
    ds = datasource(datasource_id)

    def read(a: ops.GraphAccess) -> dict:
        return {"user": ops.get_user(a, user_id), "licences": ops.user_licences(a, user_id),
                "groups": ops.user_groups(a, user_id)}

    result, error = attempt(ds, "list_users", read)
    return page("user.html", ds, "o365_users", data=result, error=error, user_id=user_id, form=ActionForm())
