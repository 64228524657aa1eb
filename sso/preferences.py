"""The signed-in user's own preferences: the time zone pages show times in."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField, SubmitField

from core import audit
from core.extensions import db
from core.timefmt import deployment_zone_name, zone_choices
from sso import bp


class PreferencesForm(FlaskForm):
    time_zone = SelectField("Time zone", render_kw={"data-offer-browser-zone": ""},
                            description="Pages show dates and times in this zone.")
    submit = SubmitField("Save")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        default = f"The gateway's default ({deployment_zone_name().replace('_', ' ')})"
        self.time_zone.choices = [("", default), *zone_choices(current_user.time_zone)]


@bp.route("/preferences", methods=["GET", "POST"])
@login_required
def preferences() -> Response | tuple[str, int] | str:
    form = PreferencesForm(data={"time_zone": current_user.time_zone or ""})
    if form.validate_on_submit():
        before = current_user.time_zone
        current_user.time_zone = form.time_zone.data or None
        if current_user.time_zone != before:
            audit.record("user.preferences", current_user.email,
                         time_zone=current_user.time_zone or "default")
        db.session.commit()
        flash(f"Times are shown in {current_user.time_zone or deployment_zone_name()}.", "success")
        return redirect(url_for("sso.preferences"))
    status = 422 if form.errors else 200
    return render_template("sso/preferences.html", form=form), status
