"""Administration > Data sources: list, "+ Add new", the Office 365 data connector screen, Authorize, Security.

The authorization's bookkeeping (pending flow, applying the grant, undo on a failed test, the tenant rule) is
datasources/authorization.py, Change tenant (when it may, what changes with it) datasources/tenant_change.py; these
views say what happened, audit it and commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select, update
from werkzeug.wrappers import Response
from wtforms import BooleanField, HiddenField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from admin import bp
from admin.connectors import CONNECTORS, KIND_LABELS
from admin.fields import CheckboxChoices, options
from admin.live_access import live_access_view
from core import audit
from core.access import can_administer_datasource, can_use_datasource, roles_required
from core.converters import DB_INT_MAX, ascii_int, parse_int
from core.extensions import db
from core.models import Datasource, Group, Role, utcnow
from core.timefmt import format_local
from datasources import authorization, tenant_change
from datasources.authorization import CHANGE_TENANT, PendingFlow
from datasources.grant import (
    needs_write_reauthorization,
    reauthorization_due,
    reauthorization_warning,
    run_connection_test,
)
from jobs.models import ScheduledTask
from live.subscriptions import remove_all, subscriptions_of
from office365.authorization import AuthorizationFailed, Grant
from office365.operations import OPERATIONS
from sso.models import SsoProvider


@dataclass(frozen=True)
class OperationLink:
    """One of the seed's ten operations in the data source's Operations panel: its label and where it is done."""

    label: str
    endpoint: str
    where: str
    write: bool


# The panel's sections: (heading, page endpoint, [(operation name, endpoint, where it is done)]).
OPERATION_SECTIONS: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("Users", "admin.o365_users", (
        ("list_users", "admin.o365_users", ""),
        ("find_users", "admin.o365_users", ""),
    )),
    ("Groups", "admin.o365_groups", (
        ("list_groups", "admin.o365_groups", ""),
        ("find_groups", "admin.o365_groups", ""),
        ("create_group", "admin.o365_group_new", ""),
        ("add_user_to_group", "admin.o365_groups", "on a group's page"),
        ("remove_user_from_group", "admin.o365_groups", "on a group's page"),
    )),
    ("Licences", "admin.o365_licences", (
        ("list_licence_plans", "admin.o365_licences", ""),
        ("assign_licence", "admin.o365_licence_assign", ""),
        ("remove_licence", "admin.o365_users", "on a user's page"),
    )),
)


def operation_sections() -> list[tuple[str, str, list[OperationLink]]]:
    """The sections with each operation's seed label, taken from the operation registry."""
    return [(heading, endpoint, [OperationLink(OPERATIONS[name].label, link, where, OPERATIONS[name].kind == "write")
                                 for name, link, where in items])
            for heading, endpoint, items in OPERATION_SECTIONS]


class DatasourceForm(FlaskForm):
    name = StringField("Display name", filters=[lambda value: value.strip() if isinstance(value, str) else value],
                       validators=[DataRequired(message="Enter a display name."),
                                   Length(max=100, message="Use at most 100 characters.")],
                       description="Used within your processes; choose something your colleagues recognise.")
    read_profiles = BooleanField("Read all users' full profiles", default=True,
                                 render_kw={"disabled": True, "checked": True},
                                 description="Always on: lets the gateway read all user profiles in Office 365.")
    read_write = BooleanField("Read and write users & groups",
                              description="Allows write operations in Office 365, such as assigning a licence "
                                          "and adding users to groups.")
    sso_enabled = BooleanField("Enable Azure OpenID Connect Single-Sign-On",
                               description="Lets people sign in to the gateway with their Office 365 account.")
    version = HiddenField()
    submit = SubmitField("Save")

    def __init__(self, *args: object, editing: Datasource | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing

    def validate_name(self, field: StringField) -> None:
        clash = db.session.scalar(select(Datasource).where(func.lower(Datasource.name) == (field.data or "").lower()))
        if clash is not None and clash is not self.editing:
            raise ValidationError("A data source with this name already exists.")


class SecurityForm(FlaskForm):
    admin_users = TextAreaField("Connection administrators: users",
                                description="Emails, one per line or comma-separated. Blank users and roles: any "
                                            "Administrator or Manage datasources.")
    admin_roles = CheckboxChoices("Connection administrators: roles", choices=options((n, n) for n in Role.ALL))
    user_users = TextAreaField("Connection users: users",
                               description="Who may run this data source's operations. Blank users and roles: "
                                           "Administrators and Manage datasources.")
    user_roles_allowed = CheckboxChoices("Connection users: roles", choices=options((n, n) for n in Role.ALL))
    admin_groups = CheckboxChoices("Connection administrators: local groups", coerce=ascii_int)
    user_groups_allowed = CheckboxChoices("Connection users: local groups", coerce=ascii_int)
    submit = SubmitField("Save security")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        groups = options((group.id, group.name) for group in db.session.scalars(select(Group).order_by(Group.name)))
        self.admin_groups.choices = self.user_groups_allowed.choices = groups


class ActionForm(FlaskForm):
    """CSRF-only form for the buttons (Authorize, Test connection, Delete)."""


def _emails(text: str | None) -> list[str]:
    parts = (text or "").replace(",", "\n").split("\n")
    return sorted({part.strip().lower() for part in parts if part.strip()})


def _datasource_for_admin(datasource_id: int) -> Datasource:
    datasource = db.session.get(Datasource, datasource_id) or abort(404)
    if not can_administer_datasource(current_user, datasource):
        abort(403)
    return datasource


def _callback_url() -> str:
    """The redirect URI registered in Entra ID: on PUBLIC_BASE_URL when set, else on the request's host."""
    public = current_app.config.get("PUBLIC_BASE_URL")
    path = url_for("admin.datasource_authorize_callback")
    return f"{public}{path}" if public else url_for("admin.datasource_authorize_callback", _external=True)


@bp.get("/datasources")
def datasources() -> str:
    query = request.args.get("q", "").strip()
    statement = select(Datasource).order_by(func.lower(Datasource.name))
    if query:
        statement = statement.where(func.lower(Datasource.name).like(f"%{query.lower()}%"))
    visible = [ds for ds in db.session.scalars(statement)
               if can_administer_datasource(current_user, ds) or can_use_datasource(current_user, ds)]
    warnings = {ds.id: reauthorization_warning(ds) for ds in visible}
    return render_template("admin/datasources/list.html", datasources=visible, q=query, kinds=KIND_LABELS,
                           warnings=warnings, form=ActionForm())


@bp.get("/datasources/new")
def datasource_new() -> str:
    return render_template("admin/datasources/connectors.html", connectors=CONNECTORS)


@bp.route("/datasources/new/office365", methods=["GET", "POST"])
def datasource_new_office365() -> Response | str:
    form = DatasourceForm()
    if form.validate_on_submit():
        datasource = Datasource(name=form.name.data, kind="office365", read_write=bool(form.read_write.data),
                                sso_enabled=bool(form.sso_enabled.data), updated_by=current_user.email)
        db.session.add(datasource)
        db.session.flush()
        audit.record("datasource.create", datasource.name, read_write=datasource.read_write,
                     sso_enabled=datasource.sso_enabled)
        db.session.commit()
        flash("Details saved successfully", "success")
        return redirect(url_for("admin.datasource_detail", datasource_id=datasource.id))
    return render_template("admin/datasources/detail.html", form=form, datasource=None, action_form=ActionForm())


@bp.route("/datasources/<id:datasource_id>", methods=["GET", "POST"])
def datasource_detail(datasource_id: int) -> Response | str | tuple[str, int]:
    datasource = db.session.get(Datasource, datasource_id) or abort(404)
    may_administer = can_administer_datasource(current_user, datasource)
    if not may_administer and not can_use_datasource(current_user, datasource):
        abort(403)
    form = DatasourceForm(editing=datasource, data=None if request.method == "POST" else {
        "name": datasource.name, "read_write": datasource.read_write, "sso_enabled": datasource.sso_enabled,
        "version": str(datasource.version)})
    if request.method == "POST":
        if not may_administer:
            abort(403)
        if form.validate_on_submit():
            saved = _save_details(datasource, form)
            if saved:
                flash("Details saved successfully", "success")  # the page itself says when to Re-Authorize
                return redirect(url_for("admin.datasource_detail", datasource_id=datasource.id))
            db.session.refresh(datasource)
            flash(f"The details changed meanwhile (saved by {datasource.updated_by} at "
                  f"{format_local(datasource.updated_at, 'seconds')}). Your changes were not saved: review the "
                  "current details and make them again.", "danger")
            return render_template("admin/datasources/detail.html", form=form, datasource=datasource,
                                   action_form=ActionForm(), **_detail_context(datasource)), 409
    return render_template("admin/datasources/detail.html", form=form, datasource=datasource,
                           action_form=ActionForm(), **_detail_context(datasource))


def _detail_context(datasource: Datasource) -> dict:
    return {"due": reauthorization_due(datasource), "warning": reauthorization_warning(datasource),
            "write_reauth": needs_write_reauthorization(datasource),
            "may_administer": can_administer_datasource(current_user, datasource),
            "may_use": can_use_datasource(current_user, datasource), "operation_sections": operation_sections(),
            "is_administrator": current_user.has_any_role(Role.ADMINISTRATOR),
            "sso_waiting": [p for p in _sso_providers(datasource) if not p.enabled]
            if datasource.status == Datasource.READY else [],
            "live_access": live_access_view(datasource) if can_administer_datasource(current_user, datasource)
            and datasource.status != Datasource.INCOMPLETE else None}


def _save_details(datasource: Datasource, form: DatasourceForm) -> bool:
    """Compare-and-set on `version`: a second admin's stale form never overwrites the first one's save."""
    version = parse_int(form.version.data or "", 0, DB_INT_MAX)
    expected = -1 if version is None else version
    before = {"name": datasource.name, "read_write": datasource.read_write, "sso_enabled": datasource.sso_enabled}
    after = {"name": form.name.data, "read_write": bool(form.read_write.data),
             "sso_enabled": bool(form.sso_enabled.data)}
    result = db.session.execute(
        update(Datasource).where(Datasource.id == datasource.id, Datasource.version == expected)
        .values(**after, version=expected + 1, updated_at=utcnow(), updated_by=current_user.email))
    if result.rowcount != 1:
        db.session.rollback()
        return False
    db.session.refresh(datasource)
    audit.record("datasource.update", datasource.name, before=before, after=after)
    db.session.commit()
    return True


@bp.post("/datasources/<id:datasource_id>/authorize")
def datasource_authorize(datasource_id: int) -> Response:
    datasource = _datasource_for_admin(datasource_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    return _start_authorization(datasource, authorization.AUTHORIZE)


@bp.post("/datasources/<id:datasource_id>/change-tenant")
@roles_required(Role.ADMINISTRATOR)
def datasource_change_tenant(datasource_id: int) -> Response:
    """Administrator only: authorize with another tenant's administrator, on purpose (Re-Authorize refuses it)."""
    datasource = _datasource_for_admin(datasource_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    refused = tenant_change.refusal(datasource)
    if refused:
        db.session.commit()  # the refusal's audit record
        flash(refused, "danger")
        return redirect(url_for("admin.datasource_detail", datasource_id=datasource.id))
    return _start_authorization(datasource, CHANGE_TENANT)


def _start_authorization(datasource: Datasource, intent: str) -> Response:
    action = "datasource.change_tenant" if intent == CHANGE_TENANT else "datasource.authorize"
    try:
        auth_uri = authorization.begin(datasource, current_user.id, intent, _callback_url())
    except AuthorizationFailed as exc:
        audit.record(action, datasource.name, outcome="failure", reason=str(exc))
        db.session.commit()
        flash(str(exc), "danger")
        return redirect(url_for("admin.datasource_detail", datasource_id=datasource.id))
    return redirect(auth_uri)


@bp.get("/datasources/authorize/callback")
def datasource_authorize_callback() -> str:
    pending = authorization.take(request.args.get("state", ""), current_user.id)
    if pending is None:
        audit.record("datasource.authorize", "unknown", outcome="failure", reason="unknown, replayed or foreign state")
        db.session.commit()
        return _authorize_result(None, False, "This authorization has expired or was already used. Close this "
                                              "window and click Authorize again.")
    datasource = pending.datasource
    if datasource is None or not can_administer_datasource(current_user, datasource):
        return _authorize_result(None, False, "The data source no longer exists or you may not administer it.")
    if pending.intent == CHANGE_TENANT and not current_user.has_any_role(Role.ADMINISTRATOR):
        return _authorize_failed(datasource, "Only an Administrator may change the tenant. Nothing was changed.")
    return _finish(datasource, pending)


def _finish(datasource: Datasource, pending: PendingFlow) -> str:
    try:
        grant = authorization.redeem(pending, request.args.to_dict())
    except AuthorizationFailed as exc:
        return _authorize_failed(datasource, str(exc))
    if pending.intent == CHANGE_TENANT and grant.tenant_id != datasource.tenant_id:
        return _tenant_changed(datasource, grant)
    return _authorize_succeeded(datasource, grant)


def _authorize_failed(datasource: Datasource, reason: str) -> str:
    audit.record("datasource.authorize", datasource.name, outcome="failure", reason=reason)
    db.session.commit()
    flash(reason, "danger")
    return _authorize_result(datasource, False, reason)


def _authorize_refused_other_tenant(datasource: Datasource, grant: Grant) -> str:
    """The tenant is fixed at the first authorization: single sign-on and imported users are keyed by it, and
    a Manage datasources user must not be able to let another tenant's people in by re-authorizing."""
    tenant = datasource.tenant_name or "its tenant"
    reason = (f"Refused: {grant.username} belongs to another Office 365 tenant ({grant.tenant_id}). This data "
              f"source is connected to {tenant} ({datasource.tenant_id}) since its first authorization, and "
              f"Re-Authorize cannot move it to another tenant: sign in with an administrator of {tenant}. "
              "Nothing was changed.")
    audit.record("datasource.reauthorize", datasource.name, outcome="refused", reason="another tenant",
                 tenant_id=datasource.tenant_id, refused_tenant_id=grant.tenant_id, authorized_by=grant.username)
    db.session.commit()
    flash(reason, "danger")
    return _authorize_result(datasource, False, reason)


def _tenant_changed(datasource: Datasource, grant: Grant) -> str:
    """The Administrator's explicit Change tenant: the new grant kept, single sign-on through this data source held
    until an Administrator confirms the new tenant, and the old tenant's sessions ended (datasources.tenant_change)."""
    change = tenant_change.change_tenant(datasource, grant)
    db.session.commit()  # the change, what changed with it and their audit records together (or the refusal's)
    flash(change.message, "warning" if change.ok else "danger")
    return _authorize_result(datasource, change.ok, change.message)


def _sso_providers(datasource: Datasource) -> list[SsoProvider]:
    return list(db.session.scalars(select(SsoProvider).where(SsoProvider.datasource_id == datasource.id)
                                   .order_by(SsoProvider.name)))


@bp.post("/datasources/<id:datasource_id>/confirm-tenant")
@roles_required(Role.ADMINISTRATOR)
def datasource_confirm_tenant(datasource_id: int) -> Response:
    """After Change tenant: an Administrator lets the new tenant's people sign in (the providers back on)."""
    datasource = _datasource_for_admin(datasource_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    disabled = [p for p in _sso_providers(datasource) if not p.enabled]
    if datasource.status != Datasource.READY or not disabled:
        flash("There is nothing to confirm: single sign-on through this data source is not waiting for a "
              "confirmation.", "info")
        return redirect(url_for("admin.datasource_detail", datasource_id=datasource.id))
    for provider in disabled:
        provider.enabled = True
    audit.record("datasource.confirm_tenant", datasource.name, tenant_id=datasource.tenant_id,
                 tenant_name=datasource.tenant_name, sso_providers_enabled=[p.name for p in disabled])
    db.session.commit()
    flash(f"Single sign-on through {datasource.name} is on again: people of {datasource.tenant_name or 'the tenant'} "
          "can sign in.", "success")
    return redirect(url_for("admin.datasource_detail", datasource_id=datasource.id))


def _authorize_succeeded(datasource: Datasource, grant: Grant) -> str:
    if authorization.is_other_tenant(datasource, grant):
        return _authorize_refused_other_tenant(datasource, grant)
    reauthorize = datasource.authorized_at is not None
    test = authorization.keep_grant(datasource, grant)
    if not test.ok:
        return _authorize_failed(datasource, test.message)
    audit.record("datasource.reauthorize" if reauthorize else "datasource.authorize", datasource.name,
                 tenant_id=grant.tenant_id, authorized_by=grant.username, scopes=grant.scopes,
                 admin_roles=grant.admin_roles)
    db.session.commit()  # the kept grant and its audit record together
    flash(test.message, "success")
    return _authorize_result(datasource, True, test.message)


def _authorize_result(datasource: Datasource | None, ok: bool, message: str) -> str:
    target = (url_for("admin.datasource_detail", datasource_id=datasource.id) if datasource
              else url_for("admin.datasources"))
    return render_template("admin/datasources/authorized.html", ok=ok, message=message, target=target)


@bp.post("/datasources/<id:datasource_id>/test")
def datasource_test(datasource_id: int) -> Response:
    datasource = _datasource_for_admin(datasource_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    result = run_connection_test(datasource)
    audit.record("datasource.test", datasource.name, outcome="success" if result.ok else "failure",
                 message=result.message)
    db.session.commit()
    flash(result.message, "success" if result.ok else "danger")
    return redirect(url_for("admin.datasource_detail", datasource_id=datasource.id))


@bp.route("/datasources/<id:datasource_id>/security", methods=["GET", "POST"])
def datasource_security(datasource_id: int) -> Response | str:
    datasource = _datasource_for_admin(datasource_id)
    form = SecurityForm(data=None if request.method == "POST" else {
        "admin_users": "\n".join(datasource.admin_users), "admin_roles": datasource.admin_roles,
        "user_users": "\n".join(datasource.user_users), "user_roles_allowed": datasource.user_roles_allowed,
        "admin_groups": datasource.admin_groups, "user_groups_allowed": datasource.user_groups_allowed})
    if form.validate_on_submit():
        proposed = Datasource(admin_users=_emails(form.admin_users.data), admin_roles=form.admin_roles.data or [],
                              admin_groups=form.admin_groups.data or [])
        if not can_administer_datasource(current_user, proposed):
            form.admin_users.errors = ["Include yourself (or one of your roles): otherwise you would lose access."]
        else:
            before = _security_summary(datasource)
            datasource.admin_users = proposed.admin_users
            datasource.admin_roles = sorted(proposed.admin_roles)
            datasource.admin_groups = sorted(proposed.admin_groups)
            datasource.user_users = _emails(form.user_users.data)
            datasource.user_roles_allowed = sorted(form.user_roles_allowed.data or [])
            datasource.user_groups_allowed = sorted(form.user_groups_allowed.data or [])
            datasource.updated_at, datasource.updated_by = utcnow(), current_user.email
            datasource.version += 1
            audit.record("datasource.security", datasource.name, before=before, after=_security_summary(datasource))
            db.session.commit()
            flash("Details saved successfully", "success")
            return redirect(url_for("admin.datasource_detail", datasource_id=datasource.id))
    return render_template("admin/datasources/security.html", form=form, datasource=datasource)


def _security_summary(datasource: Datasource) -> dict[str, list]:
    return {"admin_users": datasource.admin_users, "admin_roles": datasource.admin_roles,
            "admin_groups": datasource.admin_groups, "user_users": datasource.user_users,
            "user_roles": datasource.user_roles_allowed, "user_groups": datasource.user_groups_allowed}


@bp.route("/datasources/<id:datasource_id>/delete", methods=["GET", "POST"])
def datasource_delete(datasource_id: int) -> Response | str:
    datasource = _datasource_for_admin(datasource_id)
    form = ActionForm()
    if form.validate_on_submit():
        problems = remove_all(datasource.id)  # its Graph subscriptions first, while its grant is still here
        name, tenant_id = datasource.name, datasource.tenant_id
        db.session.delete(datasource)  # its encrypted token cache goes with it (a pending authorization finds it gone)
        audit.record("datasource.delete", name, tenant_id=tenant_id)
        db.session.commit()
        flash(f"Data source {name} deleted, with its stored tokens.", "success")
        for problem in problems:
            flash(problem, "warning")
        return redirect(url_for("admin.datasources"))
    dependents = []
    if datasource.sso_enabled:
        dependents.append("Single sign-on: people who sign in with Office 365 through this data source will no "
                          "longer be able to.")
    if subscriptions_of(datasource.id):
        dependents.append("Live access: its Microsoft Graph change-notification subscriptions are deleted at "
                          "Microsoft too.")
    tasks = db.session.scalars(select(ScheduledTask.name).where(ScheduledTask.datasource_id == datasource.id)).all()
    if tasks:
        dependents.append(f"Scheduled tasks, deleted with it: {', '.join(sorted(tasks))}.")
    return render_template("admin/datasources/delete.html", datasource=datasource, form=form, dependents=dependents)
