"""Administration > Data sources > a data source > Live access (issue 15, point 5): the switch (live access, change
notifications, the fallback poll's interval) and the state an administrator reads: subscriptions and their
expiry, the last notification, the lag, whether fallback polling is on and why, refused notifications, sessions
ended and refreshed. The section sits on the data source's page; /admin/datasources/<id>/live-access shows it alone
(and with the form's problems after a refused save).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import BooleanField, SubmitField
from wtforms.validators import InputRequired, NumberRange

from admin import bp
from admin.fields import AsciiIntegerField
from core import audit
from core.access import can_administer_datasource
from core.extensions import db
from core.models import Datasource, utcnow
from live import refusals
from live.models import GraphSubscription, LiveAccess, RefusedNotification
from live.subscriptions import lifecycle_due, maintain, public_url_problem, remove_all, subscriptions_of
from live.sync import fallback_polling, request_sync

MIN_POLL, MAX_POLL = 15, 3600


class LiveAccessForm(FlaskForm):
    enabled = BooleanField("Live access", description="Changes in Entra (a disabled account, a group removal, "
                                                      "revoked sessions) reach signed-in people within a minute.")
    notifications = BooleanField("Use change notifications",
                                 description="Microsoft Graph tells the gateway about each change. Needs "
                                             "PUBLIC_BASE_URL on https; off, the gateway polls instead.")
    poll_seconds = AsciiIntegerField(
        "Poll interval (seconds)", validators=[InputRequired(message="Enter a number of seconds."),
                                               NumberRange(min=MIN_POLL, max=MAX_POLL,
                                                           message=f"Use {MIN_POLL} to {MAX_POLL} seconds.")],
        description="How often the fallback poll asks Microsoft Graph for changes when notifications are off or "
                    "not working.")
    submit = SubmitField("Save live access")


class CheckForm(FlaskForm):
    """CSRF-only form for "Check subscriptions now"."""


@dataclass
class LiveAccessView:
    """What the section shows."""

    live: LiveAccess | None
    form: LiveAccessForm
    check_form: CheckForm
    polling: bool
    polling_why: str
    url_problem: str
    subscriptions: list[GraphSubscription] = field(default_factory=list)
    renew_at: dict[int, object] = field(default_factory=dict)
    refused: list[RefusedNotification] = field(default_factory=list)
    unattributed: int = 0
    reasons: dict[str, str] = field(default_factory=dict)


def _live(datasource_id: int) -> LiveAccess | None:
    return db.session.scalar(select(LiveAccess).where(LiveAccess.datasource_id == datasource_id))


def live_access_view(datasource: Datasource, form: LiveAccessForm | None = None) -> LiveAccessView:
    live = _live(datasource.id)
    if form is None:
        form = LiveAccessForm(prefix="live", data={
            "enabled": bool(live and live.enabled), "notifications": live.notifications if live else True,
            "poll_seconds": live.poll_seconds if live else 60})
    polling = bool(live and fallback_polling(live))
    if live is None or not live.enabled:
        why = "Live access is off: changes in Entra reach sessions at the next user import."
    elif not live.notifications:
        why = f"Change notifications are turned off: the gateway asks Graph for changes every {live.poll_seconds} s."
    elif live.fallback_reason:
        why = f"{live.fallback_reason} The gateway asks Graph for changes every {live.poll_seconds} s meanwhile."
    else:
        why = "Change notifications are healthy: Graph reports each change, and no poll is needed."
    subs = subscriptions_of(datasource.id)
    return LiveAccessView(live=live, form=form, check_form=CheckForm(prefix="live-check"), polling=polling,
                          polling_why=why, url_problem=public_url_problem(), subscriptions=subs,
                          renew_at={s.id: lifecycle_due(s.expires_at) for s in subs},
                          refused=refusals.recent(datasource.id), unattributed=refusals.unattributed_count(),
                          reasons=refusals.REASONS)


def _datasource_for_admin(datasource_id: int) -> Datasource:
    datasource = db.session.get(Datasource, datasource_id) or abort(404)
    if not can_administer_datasource(current_user, datasource):
        abort(403)
    return datasource


def _settings(live: LiveAccess | None) -> dict[str, object]:
    if live is None:
        return {"enabled": False}
    return {"enabled": live.enabled, "notifications": live.notifications, "poll_seconds": live.poll_seconds}


@bp.route("/datasources/<id:datasource_id>/live-access", methods=["GET", "POST"])
def datasource_live_access(datasource_id: int) -> Response | str | tuple[str, int]:
    datasource = _datasource_for_admin(datasource_id)
    form = LiveAccessForm(prefix="live")
    if not form.is_submitted():
        return render_template("admin/datasources/live_access.html", datasource=datasource,
                               view=live_access_view(datasource))
    if not form.validate():
        return render_template("admin/datasources/live_access.html", datasource=datasource,
                               view=live_access_view(datasource, form)), 422
    live = _live(datasource.id)
    before = _settings(live)
    if live is None:
        live = LiveAccess(datasource_id=datasource.id)
        db.session.add(live)
    live.enabled, live.notifications = bool(form.enabled.data), bool(form.notifications.data)
    live.poll_seconds = int(form.poll_seconds.data or 60)
    live.updated_at, live.updated_by = utcnow(), current_user.email
    audit.record("live.settings", datasource.name, datasource=datasource.name, before=before, after=_settings(live))
    db.session.commit()
    _apply(datasource, before, live)
    return redirect(url_for("admin.datasource_detail", datasource_id=datasource.id, _anchor="live-access"))


def _apply(datasource: Datasource, before: dict[str, object], live: LiveAccess) -> None:
    """Make the saved settings true now (the scheduler's tick would within a minute) and say how it went."""
    if not live.enabled:
        problems = remove_all(datasource.id)
        live.fallback_reason = ""
        db.session.commit()
        flash("Live access is off." if before.get("enabled") else "Live access stays off.", "success")
        for problem in problems:
            flash(problem, "warning")
        return
    maintain(datasource.id)  # creates, or deletes, the subscriptions (Graph's handshake calls this gateway back)
    db.session.expire_all()
    live = _live(datasource.id) or live
    request_sync(datasource.id, "enabled" if not before.get("enabled") else "settings")
    if not live.notifications:
        flash(f"Live access is on, without change notifications: the gateway asks Graph for changes every "
              f"{live.poll_seconds} s.", "success")
    elif live.fallback_reason:
        flash(f"Live access is on, but change notifications cannot work yet: {live.fallback_reason} Meanwhile "
              f"the gateway asks Graph for changes every {live.poll_seconds} s.", "warning")
    else:
        flash("Live access is on: Microsoft Graph reports changes to users and groups as they happen.", "success")


@bp.post("/datasources/<id:datasource_id>/live-access/check")
def datasource_live_access_check(datasource_id: int) -> Response:
    """Check (create, renew, re-create) the subscriptions now instead of at the next minute's tick."""
    datasource = _datasource_for_admin(datasource_id)
    if not CheckForm(prefix="live-check").validate_on_submit():
        abort(400)
    live = _live(datasource.id)
    if live is None or not live.enabled:
        flash("Live access is off: there are no subscriptions to check.", "info")
        return redirect(url_for("admin.datasource_detail", datasource_id=datasource.id, _anchor="live-access"))
    maintain(datasource.id)
    db.session.expire_all()
    live = _live(datasource.id) or live
    audit.record("live.check", datasource.name, datasource=datasource.name,
                 subscriptions=len(subscriptions_of(datasource.id)), fallback_reason=live.fallback_reason or None)
    db.session.commit()
    if live.notifications and live.fallback_reason:
        flash(f"Change notifications are not working: {live.fallback_reason}", "warning")
    else:
        flash("Subscriptions checked." if live.notifications else
              "Change notifications are turned off: nothing to check.", "success")
    return redirect(url_for("admin.datasource_detail", datasource_id=datasource.id, _anchor="live-access"))
