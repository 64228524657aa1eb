"""Administration > API keys (Administrator only): create a key for a user (shown once), list, revoke."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.wrappers import Response
from wtforms import EmailField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional, ValidationError

from admin import bp
from admin.fields import AsciiIntegerField
from core import audit
from core.access import roles_required
from core.api_keys import ApiKey
from core.extensions import db
from core.models import Role, User, utcnow


class ApiKeyForm(FlaskForm):
    email = EmailField("User", validators=[DataRequired(message="Enter the email of the user the key acts as."),
                                           Email(), Length(max=320)],
                       description="The key acts as this user: it may use the data sources they may use.")
    name = StringField("Name", validators=[DataRequired(message="Name the key after what uses it."), Length(max=100)],
                       description="What uses the key, e.g. \"HR onboarding script\".")
    expires_in_days = AsciiIntegerField("Expires after (days)", validators=[Optional(), NumberRange(min=1, max=3650)],
                                   description="Leave blank for a key that does not expire.")
    submit = SubmitField("Create key")

    def validate_email(self, field: EmailField) -> None:
        user = db.session.scalar(select(User).where(func.lower(User.email) == (field.data or "").strip().lower()))
        if user is None:
            raise ValidationError("There is no user with this email. Create the user first under Users.")
        if not user.active:
            raise ValidationError("This user is disabled.")
        self.user = user


class RevokeForm(FlaskForm):
    """CSRF only."""


@bp.route("/api-keys", methods=["GET", "POST"])
@roles_required(Role.ADMINISTRATOR)
def api_keys() -> str | Response:
    form = ApiKeyForm()
    if form.validate_on_submit():
        expires = utcnow() + timedelta(days=form.expires_in_days.data) if form.expires_in_days.data else None
        row, key = ApiKey.issue(form.user, form.name.data.strip(), expires_at=expires, created_by=current_user.email)
        db.session.add(row)
        db.session.flush()
        audit.record("api_key.create", f"{row.label} {row.name}", user=form.user.email,
                     expires_at=expires.isoformat() if expires else None)
        db.session.commit()
        response = render_template("admin/api_keys/created.html", row=row, new_key=key)
        return Response(response, mimetype="text/html", headers={"Cache-Control": "no-store"})
    keys = db.session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())).all()
    return render_template("admin/api_keys/list.html", form=form, keys=keys, revoke_form=RevokeForm())


@bp.post("/api-keys/<id:key_id>/revoke")
@roles_required(Role.ADMINISTRATOR)
def api_key_revoke(key_id: int) -> Response:
    if not RevokeForm().validate_on_submit():
        abort(400)
    row = db.session.get(ApiKey, key_id) or abort(404)
    if row.revoked_at is None:
        row.revoked_at, row.revoked_by = utcnow(), current_user.email
        audit.record("api_key.revoke", f"{row.label} {row.name}", user=row.user.email)
        db.session.commit()
        flash(f"API key {row.label} ({row.name}) revoked: it no longer works.", "success")
    return redirect(url_for("admin.api_keys"))
