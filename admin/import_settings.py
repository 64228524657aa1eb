"""Administration > Scheduled tasks > a datasource's import settings (Administrator). The rules and the saving are
imports.settings' service; this module is the form and the page."""

from __future__ import annotations

from dataclasses import asdict

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import BooleanField, RadioField, SelectField, SubmitField, TextAreaField
from wtforms.validators import NumberRange

from admin import bp
from admin.fields import AsciiIntegerField, CheckboxChoices, options
from core.access import roles_required
from core.extensions import db
from core.models import Datasource, Role
from imports.settings import ImportSettings, SettingsRefused, current_settings, save_settings
from imports.state import import_for
from jobs.models import ScheduledTask
from jobs.recurrence import describe
from office365.errors import Office365Error


class ImportForm(FlaskForm):
    scope = RadioField("What to import", default="all", choices=options([
        ("all", "All users"), ("groups", "Members of chosen Office 365 groups")]))
    source_groups = TextAreaField("Office 365 groups", description="Names or ids, one per line (members of any).")
    default_role = SelectField("Role of new users", choices=options((n, n) for n in Role.ALL), default=Role.USER)
    profile_fields = CheckboxChoices("Keep in step", choices=options([
        ("display_name", "Display name"), ("email", "E-mail"), ("active", "Account enabled")]))
    on_missing = RadioField("Users no longer in the source", default="nothing", choices=options([
        ("nothing", "Do nothing"), ("disable", "Disable them"), ("remove", "Remove them")]))
    removal_guard_percent = AsciiIntegerField("Removal guard (%)", default=10, validators=[NumberRange(0, 100)],
                                         description="A run that would disable or remove more than this share of "
                                                     "imported users waits for an administrator's confirmation.")
    bindings = TextAreaField("Group member sync", description="One per line: Local group = Office 365 group "
                                                              "(name or id). The local group is created if needed.")
    override_members = BooleanField("Override group members",
                                    description="Bound local groups mirror their Office 365 group exactly "
                                                "(members not in it are taken out).")
    submit = SubmitField("Save import settings")


    def settings(self) -> ImportSettings:
        return ImportSettings(
            scope=self.scope.data, source_groups=self.source_groups.data or "", default_role=self.default_role.data,
            profile_fields=list(self.profile_fields.data or []), on_missing=self.on_missing.data,
            removal_guard_percent=self.removal_guard_percent.data, bindings=self.bindings.data or "",
            override_members=bool(self.override_members.data))


@bp.route("/scheduled-tasks/imports/<id:datasource_id>", methods=["GET", "POST"])
@roles_required(Role.ADMINISTRATOR)
def import_settings(datasource_id: int) -> Response | str:
    datasource = db.session.get(Datasource, datasource_id) or abort(404)
    user_import = import_for(datasource)
    form = ImportForm(data=None if request.method == "POST" else asdict(current_settings(user_import, datasource)))
    if form.validate_on_submit():
        try:
            save_settings(user_import, datasource, form.settings(), actor=current_user.email)
        except SettingsRefused as exc:
            getattr(form, exc.field).errors = [str(exc)]
        except Office365Error as exc:
            flash(f"Could not look the groups up in Office 365: {exc}", "danger")
        else:
            flash("Import settings saved.", "success")
            return redirect(url_for("admin.import_settings", datasource_id=datasource.id))
    tasks = db.session.scalars(select(ScheduledTask).where(ScheduledTask.datasource_id == datasource.id)).all()
    return render_template("admin/scheduled_tasks/import.html", form=form, datasource=datasource,
                           user_import=user_import, tasks=tasks, describe=describe)
