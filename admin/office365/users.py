"""Office 365 > Users: User List (server-side paging through Graph cursors), Find Users, a user's page."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from admin import bp, connection_user_view
from admin.office365.common import ActionForm, attempt, datasource, message_of, page, route
from admin.office365.lists import bulk_preview_url, read_list
from datasources import cursors
from datasources.service import usable_datasources
from office365 import operations as ops
from office365.errors import FieldError


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
    """User List: the total, a prefix search, filters (account, licence, department), sort and page size."""
    ds = datasource(datasource_id)
    view = read_list(ds, "list_users", "users", lambda a, q, link: ops.list_users(a, query=q, cursor=link))
    users = view.result.users if view.result else []
    plans = _plan_names(ds) if any(u.licence_sku_ids for u in users) else {}
    return page("users.html", ds, "o365_users", view=view, error=message_of(view.error) if view.error else None,
                plans=plans, bulk_url=bulk_preview_url(ds.id), form=ActionForm())


def _plan_names(ds) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """SKU id -> SKU part number, to show licences by name (one extra read; none when it fails)."""
    plans, _ = attempt(ds, "list_licence_plans", ops.list_licence_plans)
    return {p.sku_id.lower(): p.sku_part_number for p in plans.plans} if plans else {}


GROUPS_PAGE_SIZE = 50


@route("/users/<user_id>", "o365_user")
def o365_user(datasource_id: int, user_id: str) -> str:
    """A user's details, licences and groups: every group, 50 a page, with how many there are in all."""
    ds = datasource(datasource_id)
    fingerprint = cursors.fingerprint(kind="user_groups", user=user_id.lower(), size=GROUPS_PAGE_SIZE)
    try:
        position = cursors.decode(request.args.get("groups_cursor"), fingerprint)
    except FieldError as exc:
        return page("user.html", ds, "o365_users", data=None, error=message_of(exc), user_id=user_id,
                    form=ActionForm())

    def read(a: ops.GraphAccess) -> dict:
        groups = ops.user_group_page(a, user_id, page_size=GROUPS_PAGE_SIZE, cursor=position.link)
        return {"user": ops.get_user(a, user_id), "licences": ops.user_licences(a, user_id), "groups": groups,
                "groups_pager": cursors.pager(position, groups.next_cursor, groups.count, fingerprint)}

    result, error = attempt(ds, "list_users", read)
    return page("user.html", ds, "o365_users", data=result, error=message_of(error) if error else None,
                user_id=user_id, form=ActionForm(), groups_page_size=GROUPS_PAGE_SIZE)
