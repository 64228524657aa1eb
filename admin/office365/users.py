"""Office 365 > Users: User List (server-side paging through Graph cursors), Find Users, a user's page."""

from __future__ import annotations

from collections.abc import Iterator

from flask import redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from admin import bp, connection_user_view
from admin.office365.common import (
    ActionForm,
    attempt,
    datasource,
    flash_error,
    message_of,
    page,
    route,
    streaming_access,
)
from admin.office365.lists import bulk_preview_url, query_args, query_from_args, read_list
from admin.paging import csv_lines
from core import audit
from core.extensions import db
from datasources import cursors
from datasources.service import usable_datasources
from office365 import operations as ops
from office365.errors import FieldError, Office365Error
from office365.selection import Matching, iter_matching
from office365.users import USER_FIELDS


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
                plans=plans, bulk_url=bulk_preview_url(ds.id), form=ActionForm(),
                export_url=export_url(ds.id, view) if view.result else None)


USERS_CSV_HEADER = ("id", "displayName", "userPrincipalName", "mail", "jobTitle", "department", "accountEnabled",
                    "usageLocation", "licenceSkuIds")


@route("/users.csv", "o365_users_csv")
def o365_users_csv(datasource_id: int) -> Response:
    """Every user of the tenant, or every one matching the User List's search and filters, as CSV, streamed like
    the members export: Graph pages (999 users) are read as the download goes, so memory stays flat however large
    the tenant; a failure part-way ends the file with a line saying so."""
    ds = datasource(datasource_id)
    try:
        query = query_from_args("users")
        access = streaming_access(ds)
    except (FieldError, Office365Error) as exc:
        flash_error(exc)
        return redirect(url_for("admin.o365_users", datasource_id=ds.id))
    matching = Matching("users", query.q, query.filters)
    audit.record("o365.export_users", matching.describe() if query.narrowed else "every user", datasource=ds.name,
                 via="session")
    db.session.commit()

    def rows() -> Iterator[ops.User]:
        try:
            for item in iter_matching(access, matching, USER_FIELDS):
                yield ops.User.from_graph(item)
        except Office365Error as exc:
            yield ops.User("", f"EXPORT INCOMPLETE: {message_of(exc)}", None)

    body = csv_lines(USERS_CSV_HEADER, rows(), lambda u: (
        u.id, u.display_name, u.user_principal_name, u.mail, u.job_title, u.department,
        "" if u.account_enabled is None else str(u.account_enabled).lower(), u.usage_location,
        " ".join(u.licence_sku_ids)))
    response = Response(body, mimetype="text/csv")
    name = "users-matching" if query.narrowed else "users"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


def export_url(ds_id: int, view) -> str:  # type: ignore[no-untyped-def]
    """The users export of what the list shows (its search and filters; sort and page size do not matter)."""
    args = {k: v for k, v in query_args(view.query).items() if k in ("q", "filter", "department")}
    return url_for("admin.o365_users_csv", datasource_id=ds_id, **args)


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
