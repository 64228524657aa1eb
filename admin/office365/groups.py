"""Office 365 > Groups: Group List, Find Groups, a group's page with its members, Create Group, Add User to
Group (type-ahead picker), Remove User From Group (with confirmation)."""

from __future__ import annotations

from collections.abc import Iterator

from flask import abort, flash, redirect, request, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import RadioField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from admin.fields import options
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
from admin.office365.lists import bulk_preview_url, read_list
from admin.paging import csv_lines
from core import audit
from core.extensions import db
from office365 import odata
from office365 import operations as ops
from office365.errors import FieldError, Office365Error


class CreateGroupForm(FlaskForm):
    display_name = StringField("Display name", validators=[DataRequired(message="Enter a display name."),
                                                           Length(max=256)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=1024)], render_kw={"rows": 2})
    mail_nickname = StringField("Mail nickname", validators=[Optional(), Length(max=64)],
                                description="Letters, digits, '-' and '_'; offered from the display name. "
                                            "Leave blank to use the suggestion.")
    group_type = RadioField("Type", default="security", choices=options([
        ("security", "Security"), ("microsoft365", "Microsoft 365 (with a mailbox and Teams)")]))


def user_key(prefix: str = "user_id") -> str:
    """The picked user's id, or what was typed in the picker (an id or UPN) when nothing was picked."""
    return (request.form.get(prefix) or request.form.get(f"{prefix}_text") or "").strip()


@route("/groups", "o365_groups")
def o365_groups(datasource_id: int) -> str:
    """Group List: the total, a prefix search, a group type filter, sort and page size."""
    ds = datasource(datasource_id)
    view = read_list(ds, "list_groups", "groups", lambda a, q, link: ops.list_groups(a, query=q, cursor=link))
    return page("groups.html", ds, "o365_groups", view=view, error=message_of(view.error) if view.error else None)


@route("/groups/<group_id>", "o365_group")
def o365_group(datasource_id: int, group_id: str) -> str:
    """A group with its members: searched, filtered and paged by Graph, "is X a member?", CSV export."""
    ds = datasource(datasource_id)
    group, error = attempt(ds, "list_groups", lambda a: ops.get_group(a, group_id))
    view = None
    if group is not None:
        view = read_list(ds, "list_groups", "members",
                         lambda a, q, link: ops.list_group_members(a, group.id, query=q, cursor=link),
                         group=group.id)
        error = error or view.error
    member_key = request.args.get("member", "").strip()
    membership = None
    if group is not None and member_key:
        found, exc = attempt(ds, "list_groups", lambda a: ops.find_member(a, group.id, member_key))
        membership = {"key": member_key, "member": found, "error": message_of(exc) if exc else None}
    return page("group.html", ds, "o365_groups", group=group, view=view, error=message_of(error) if error else None,
                group_id=group_id, membership=membership, form=ActionForm(), bulk_url=bulk_preview_url(ds.id))


@route("/groups/<group_id>/members.csv", "o365_group_members_csv")
def o365_group_members_csv(datasource_id: int, group_id: str) -> Response:
    """Every member of the group as CSV, streamed: Graph pages (999 members) are fetched as the download goes,
    so memory stays flat whatever the group's size; a failure part-way ends the file with a line saying so.
    The access token is taken before streaming (an hour's validity: 100,000 members are ~100 Graph pages)."""
    ds = datasource(datasource_id)
    gid = group_id.lower()
    if not odata.is_guid(gid):
        abort(404)
    try:
        access = streaming_access(ds)
    except Office365Error as exc:
        flash_error(exc)
        return redirect(url_for("admin.o365_group", datasource_id=ds.id, group_id=gid))
    audit.record("o365.export_members", f"group {gid}", datasource=ds.name, via="session")
    db.session.commit()

    def rows() -> Iterator[ops.Member]:
        try:
            yield from ops.iter_group_members(access, gid)
        except Office365Error as exc:
            yield ops.Member("", "error", f"EXPORT INCOMPLETE: {message_of(exc)}", None)

    body = csv_lines(("id", "type", "displayName", "userPrincipalName", "mail"), rows(),
                     lambda m: (m.id, m.kind, m.display_name, m.user_principal_name, m.mail))
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="group-{gid}-members.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


@route("/groups/new", "o365_group_new", methods=("GET", "POST"))
def o365_group_new(datasource_id: int) -> str | Response:
    ds = datasource(datasource_id)
    form = CreateGroupForm()
    owners, members = request.form.getlist("owners"), request.form.getlist("members")
    error = None
    if form.validate_on_submit():
        new = ops.NewGroup(display_name=form.display_name.data, group_type=ops.GroupType(form.group_type.data),
                           mail_nickname=form.mail_nickname.data or None, description=form.description.data or None,
                           owners=tuple(owners), members=tuple(members))
        summary = {"display_name": new.display_name, "mail_nickname": new.mail_nickname,
                   "group_type": new.group_type.value, "owners": len(owners), "members": len(members)}
        created, exc = attempt(ds, "create_group", lambda a: ops.create_group(a, new), new.display_name, summary,
                               outcome_of=lambda r: {"group_id": r.group.id, "mail_nickname": r.group.mail_nickname})
        if created is not None:
            failed = [r for r in created.member_results if not r.ok]
            flash(f"Group {created.group.display_name} created (mail nickname {created.group.mail_nickname}).",
                  "success")
            if failed:
                flash(f"{len(failed)} of the initial members could not be added: "
                      + "; ".join(f"{r.id}: {r.message}" for r in failed[:5]), "warning")
            return redirect(url_for("admin.o365_group", datasource_id=ds.id, group_id=created.group.id))
        assert exc is not None
        if isinstance(exc, FieldError) and hasattr(form, exc.field):
            text = exc.message + (f" Suggestion: {exc.suggestion}" if exc.suggestion else "")
            getattr(form, exc.field).errors = [text]
            if exc.suggestion:
                form.mail_nickname.render_kw = {"data-suggestion": exc.suggestion}
        else:
            error = message_of(exc)
    return page("group_new.html", ds, "o365_groups", form=form, error=error, owners=owners, members=members)


@route("/groups/<group_id>/members", "o365_group_add_member", methods=("POST",))
def o365_group_add_member(datasource_id: int, group_id: str) -> Response:
    ds = datasource(datasource_id)
    back = redirect(url_for("admin.o365_group", datasource_id=ds.id, group_id=group_id))
    if not ActionForm().validate_on_submit():
        flash("The form expired. Try again.", "danger")
        return back
    key = user_key()
    if not key:
        flash("Pick a user to add.", "danger")
        return back
    summary = {"group_id": group_id, "user_id": key}
    target = f"group {group_id} / user {key}"

    def add(a: ops.GraphAccess) -> ops.MembershipResult:
        uid = key if len(key) == 36 and "@" not in key else ops.get_user(a, key).id
        return ops.add_user_to_group(a, group_id, uid)

    result, exc = attempt(ds, "add_user_to_group", add, target, summary, outcome_of=lambda r: {"result": r.outcome})
    if exc is not None:
        flash_error(exc)
    elif result is not None and result.outcome == "already_member":
        flash("Already a member: the user was already in the group, nothing changed.", "info")
    else:
        flash("The user was added to the group.", "success")
    return back


@route("/groups/<group_id>/members/<user_id>/remove", "o365_group_remove_member", methods=("GET", "POST"))
def o365_group_remove_member(datasource_id: int, group_id: str, user_id: str) -> str | Response:
    ds = datasource(datasource_id)
    form = ActionForm()
    if form.validate_on_submit():
        summary = {"group_id": group_id, "user_id": user_id}
        result, exc = attempt(ds, "remove_user_from_group", lambda a: ops.remove_user_from_group(a, group_id, user_id),
                              f"group {group_id} / user {user_id}", summary,
                              outcome_of=lambda r: {"result": r.outcome})
        if exc is not None:
            flash_error(exc)
        else:
            flash("The user was removed from the group.", "success")
        return redirect(url_for("admin.o365_group", datasource_id=ds.id, group_id=group_id))

    def read(a: ops.GraphAccess) -> dict:
        return {"group": ops.get_group(a, group_id, with_member_count=False), "user": ops.get_user(a, user_id)}

    data, error = attempt(ds, "list_groups", read)
    return page("remove_member.html", ds, "o365_groups", data=data, error=error, form=form, group_id=group_id,
                user_id=user_id)
