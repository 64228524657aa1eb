"""Administration > Scheduled tasks (Administrator): schedules, run now, enable/disable, webhook, run history with
live progress (a datasource's import settings: admin/import_settings.py)."""

from __future__ import annotations

import secrets
from typing import NamedTuple

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.wrappers import Response
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from admin import bp
from admin.fields import AsciiIntegerField, options
from core import audit
from core.access import roles_required
from core.converters import DB_INT_MAX, ascii_int, int_arg
from core.crypto import secret_box
from core.extensions import db
from core.models import Datasource, Role, utcnow
from core.timefmt import deployment_zone_name, format_local, zone, zone_choices
from jobs.models import ScheduledTask, TaskRun
from jobs.queue import enqueue_run
from jobs.recurrence import WEEKDAYS, describe, next_run, wall_time
from jobs.runner import create_run, last_failed_runs, sweep_stale
from jobs.scheduler import ensure_system_tasks
from jobs.webhook import secret_hash

ADMIN = Role.ADMINISTRATOR


# The fields each schedule uses; the others are hidden (static/js/task-form.js), not validated and not saved.
SCHEDULE_FIELDS: dict[str, tuple[str, ...]] = {
    "minutes": ("interval_minutes",), "hourly": ("minute",), "daily": ("at_time", "weekdays_only"),
    "weekly": ("weekday", "at_time"), "monthly": ("day_of_month", "at_time"), "once": ("run_at",), "webhook": ()}
# For the page: field name -> the schedules that use it ("daily weekly monthly").
SCHEDULES_USING: dict[str, str] = {
    name: " ".join(schedule for schedule, names in SCHEDULE_FIELDS.items() if name in names)
    for name in dict.fromkeys(name for names in SCHEDULE_FIELDS.values() for name in names)}


class TaskForm(FlaskForm):
    name = StringField("Name", filters=[lambda v: v.strip() if isinstance(v, str) else v],
                       validators=[DataRequired(message="Enter a name."), Length(max=100)])
    kind = SelectField("Task", choices=options(ScheduledTask.KINDS.items()))
    datasource_id = SelectField("Data source", coerce=ascii_int, validators=[Optional()],
                                description="The Office 365 data source to import users from.")
    dry_run = BooleanField("Dry run only", description="Report what would change; change nothing.")
    schedule = SelectField("Schedule", choices=options(ScheduledTask.SCHEDULES.items()))
    interval_minutes = AsciiIntegerField("Every N minutes", default=60,
                                         validators=[Optional(), NumberRange(1, 1440)])
    minute = AsciiIntegerField("Minutes past the hour", default=0, validators=[Optional(), NumberRange(0, 59)])
    at_time = StringField("At (HH:MM)", default="03:00",
                          validators=[Optional(), Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", message="Use HH:MM.")])
    weekdays_only = BooleanField("Weekdays only (daily)")
    weekday = SelectField("Day of the week (weekly)", coerce=ascii_int, choices=options(enumerate(WEEKDAYS)))
    day_of_month = AsciiIntegerField("Day of the month (monthly)", default=1,
                                     validators=[Optional(), NumberRange(1, 31)],
                                     description="Months without that day run on their last day.")
    run_at = DateTimeLocalField("Run at (once)", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    time_zone = SelectField("Time zone", default=deployment_zone_name, render_kw={"data-offer-browser-zone": ""},
                            description="The times above are read in this zone, with its daylight-saving changes.")
    enabled = BooleanField("Enabled", default=True)
    submit = SubmitField("Save")

    def __init__(self, *args: object, editing: ScheduledTask | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        self.datasource_id.choices = options([(0, "—")] + [
            (ds.id, ds.name) for ds in db.session.scalars(select(Datasource).order_by(Datasource.name))])
        self.time_zone.choices = options(zone_choices(deployment_zone_name(), editing.time_zone if editing else None))

    def validate_name(self, field: StringField) -> None:
        clash = db.session.scalar(select(ScheduledTask).where(func.lower(ScheduledTask.name) == field.data.lower()))
        if clash is not None and clash is not self.editing:
            raise ValidationError("A scheduled task with this name already exists.")

    def validate_datasource_id(self, field: SelectField) -> None:
        if self.kind.data == ScheduledTask.KIND_IMPORT and not field.data:
            raise ValidationError("Choose the data source to import from.")

    def validate_run_at(self, field: DateTimeLocalField) -> None:
        if self.schedule.data == "once" and field.data is None:
            raise ValidationError("Give the date and time of the run.")

    def applies(self, name: str) -> bool:
        """Whether a schedule field is used by the chosen schedule (the page shows only those)."""
        return name in SCHEDULE_FIELDS.get(self.schedule.data, ())

    def validate(self, extra_validators: dict | None = None) -> bool:
        """Check only what the chosen schedule uses: a stale value in a field that does not apply is ignored."""
        for name in SCHEDULES_USING:
            if not self.applies(name):
                getattr(self, name).validate = _not_checked
        return super().validate(extra_validators)


def _not_checked(form: FlaskForm, extra_validators: tuple = ()) -> bool:
    """Validation of a field the chosen schedule does not use."""
    return True


class ActionForm(FlaskForm):
    """CSRF-only form for the buttons."""


def _hhmm(task: ScheduledTask) -> str:
    return f"{task.at_minute // 60 % 24:02d}:{task.at_minute % 60:02d}"


def _apply_form(task: ScheduledTask, form: TaskForm) -> None:
    task.name = form.name.data
    task.kind = form.kind.data
    task.datasource_id = form.datasource_id.data or None
    task.dry_run = bool(form.dry_run.data)
    task.schedule = form.schedule.data
    if form.applies("interval_minutes"):
        task.interval_minutes = form.interval_minutes.data or 60
    if form.applies("minute"):
        task.at_minute = form.minute.data or 0
    if form.applies("at_time"):
        hour, minute = (int(p) for p in (form.at_time.data or "03:00").split(":"))
        task.at_minute = hour * 60 + minute
    task.weekdays_only = bool(form.weekdays_only.data) if form.applies("weekdays_only") else False
    if form.applies("weekday"):
        task.weekday = form.weekday.data or 0
    if form.applies("day_of_month"):
        task.day_of_month = form.day_of_month.data or 1
    task.time_zone = form.time_zone.data
    local = form.run_at.data if form.applies("run_at") else None
    task.run_at = wall_time(local.date(), local.hour, local.minute, zone(task.time_zone)) if local else None
    task.enabled = bool(form.enabled.data)
    task.next_run_at = next_run(task, utcnow()) if task.enabled else None
    if task.schedule == "webhook" and not task.webhook_hash:
        _new_secret(task)


def _new_secret(task: ScheduledTask) -> None:
    secret = secrets.token_urlsafe(32)
    task.webhook_secret = secret_box().encrypt(secret)
    task.webhook_hash = secret_hash(secret)


class Webhook(NamedTuple):
    """How to call a task's webhook: `endpoint` with the secret in a header, or `url` with it in the path."""

    endpoint: str
    secret: str
    url: str


def _webhook(task: ScheduledTask) -> Webhook | None:
    if task.schedule != "webhook" or not task.webhook_secret:
        return None
    secret = secret_box().decrypt(task.webhook_secret)
    return Webhook(url_for("hooks.run_task_webhook_header", _external=True), secret,
                   url_for("hooks.run_task_webhook", secret=secret, _external=True))


def _task(task_id: int) -> ScheduledTask:
    return db.session.get(ScheduledTask, task_id) or abort(404)


def _last_runs(task_ids: list[int]) -> dict[int, TaskRun]:
    latest = {}
    if task_ids:
        for run in db.session.scalars(select(TaskRun).where(TaskRun.task_id.in_(task_ids))
                                      .order_by(TaskRun.id.desc()).limit(500)):
            latest.setdefault(run.task_id, run)
    return latest


@bp.app_template_global()
def import_attention(datasource_id: int) -> list[TaskRun]:
    """Failed (or waiting) import runs of a datasource, for its page."""
    return [run for run in last_failed_runs(datasource_id) if run.kind == ScheduledTask.KIND_IMPORT]


@bp.get("/scheduled-tasks")
@roles_required(ADMIN)
def scheduled_tasks() -> str:
    ensure_system_tasks()
    sweep_stale()
    tasks = db.session.scalars(select(ScheduledTask).order_by(func.lower(ScheduledTask.name))).all()
    runs = db.session.scalars(select(TaskRun).order_by(TaskRun.id.desc()).limit(25)).all()
    names = {ds.id: ds.name for ds in db.session.scalars(select(Datasource))}
    return render_template("admin/scheduled_tasks/list.html", tasks=tasks, last=_last_runs([t.id for t in tasks]),
                           runs=runs, describe=describe, datasource_names=names, form=ActionForm(),
                           imports=db.session.scalars(select(Datasource).order_by(Datasource.name)).all())


@bp.route("/scheduled-tasks/new", methods=["GET", "POST"])
@roles_required(ADMIN)
def scheduled_task_new() -> Response | str:
    form = TaskForm()
    if request.method == "GET" and request.args.get("datasource"):
        form.datasource_id.data = int_arg("datasource", 0, 1, DB_INT_MAX)
    if form.validate_on_submit():
        task = ScheduledTask(owner=current_user.email)
        _apply_form(task, form)
        db.session.add(task)
        db.session.flush()
        audit.record("task.create", task.name, schedule=describe(task), kind=task.kind)
        db.session.commit()
        flash(f"Scheduled task {task.name} saved.", "success")
        return redirect(url_for("admin.scheduled_task_detail", task_id=task.id))
    return render_template("admin/scheduled_tasks/form.html", form=form, task=None, schedules_using=SCHEDULES_USING)


@bp.route("/scheduled-tasks/<id:task_id>", methods=["GET", "POST"])
@roles_required(ADMIN)
def scheduled_task_detail(task_id: int) -> Response | str:
    task = _task(task_id)
    form = TaskForm(editing=task, data=None if request.method == "POST" else {
        "name": task.name, "kind": task.kind, "datasource_id": task.datasource_id or 0, "dry_run": task.dry_run,
        "schedule": task.schedule, "interval_minutes": task.interval_minutes, "at_time": _hhmm(task),
        "minute": task.at_minute % 60,
        "weekdays_only": task.weekdays_only, "weekday": task.weekday, "day_of_month": task.day_of_month,
        "run_at": task.run_at.astimezone(zone(task.time_zone)).replace(tzinfo=None) if task.run_at else None,
        "time_zone": task.time_zone, "enabled": task.enabled})
    if form.validate_on_submit():
        _apply_form(task, form)
        audit.record("task.update", task.name, schedule=describe(task), enabled=task.enabled)
        db.session.commit()
        flash("Scheduled task saved.", "success")
        return redirect(url_for("admin.scheduled_task_detail", task_id=task.id))
    runs = db.session.scalars(select(TaskRun).where(TaskRun.task_id == task.id)
                              .order_by(TaskRun.id.desc()).limit(50)).all()
    return render_template("admin/scheduled_tasks/form.html", form=form, task=task, runs=runs,
                           describe=describe, webhook=_webhook(task), action_form=ActionForm(),
                           schedules_using=SCHEDULES_USING)


def _check_action() -> None:
    if not ActionForm().validate_on_submit():
        abort(400)


@bp.post("/scheduled-tasks/<id:task_id>/run")
@roles_required(ADMIN)
def scheduled_task_run(task_id: int) -> Response:
    task = _task(task_id)
    _check_action()
    dry = request.form.get("dry_run") == "1" or task.dry_run
    run = create_run(kind=task.kind, datasource_id=task.datasource_id, trigger="manual", actor=current_user.email,
                     task=task, dry_run=dry)
    enqueue_run(run.id)
    audit.record("task.run_now", task.name, run_id=run.id, dry_run=dry)
    db.session.commit()
    return redirect(url_for("admin.task_run_detail", run_id=run.id))


@bp.post("/scheduled-tasks/<id:task_id>/toggle")
@roles_required(ADMIN)
def scheduled_task_toggle(task_id: int) -> Response:
    task = _task(task_id)
    _check_action()
    task.enabled = not task.enabled
    task.next_run_at = next_run(task, utcnow()) if task.enabled else None
    audit.record("task.enable" if task.enabled else "task.disable", task.name)
    db.session.commit()
    flash(f"{task.name} {'enabled' if task.enabled else 'disabled'}.", "success")
    if request.form.get("back") == "task":
        return redirect(url_for("admin.scheduled_task_detail", task_id=task.id))
    return redirect(url_for("admin.scheduled_tasks"))


@bp.post("/scheduled-tasks/<id:task_id>/webhook")
@roles_required(ADMIN)
def scheduled_task_webhook(task_id: int) -> Response:
    task = _task(task_id)
    _check_action()
    if task.schedule != "webhook":
        abort(400)
    _new_secret(task)
    audit.record("task.webhook_regenerate", task.name)
    db.session.commit()
    flash("A new webhook URL was generated; the old one no longer works.", "success")
    return redirect(url_for("admin.scheduled_task_detail", task_id=task.id))


@bp.post("/scheduled-tasks/<id:task_id>/delete")
@roles_required(ADMIN)
def scheduled_task_delete(task_id: int) -> Response:
    task = _task(task_id)
    _check_action()
    name = task.name
    db.session.delete(task)
    audit.record("task.delete", name)
    db.session.commit()
    flash(f"Scheduled task {name} deleted with its run history.", "success")
    return redirect(url_for("admin.scheduled_tasks"))


def _run(run_id: int) -> TaskRun:
    return db.session.get(TaskRun, run_id) or abort(404)


@bp.get("/scheduled-tasks/runs/<id:run_id>")
@roles_required(ADMIN)
def task_run_detail(run_id: int) -> str:
    run = _run(run_id)
    task = db.session.get(ScheduledTask, run.task_id) if run.task_id else None
    datasource = db.session.get(Datasource, run.datasource_id) if run.datasource_id else None
    return render_template("admin/scheduled_tasks/run.html", run=run, task=task, datasource=datasource,
                           form=ActionForm())


def progress_json(run: TaskRun) -> dict:
    data = {name: getattr(run, name) for name in (*TaskRun.COUNTS, "pages", "processed", "graph_requests",
                                                  "status", "phase", "resyncs")}
    data.update(done=run.done, total=run.total_estimate, error=run.error, step=run.step,
                started=format_local(run.started_at, "seconds") if run.started_at else "queued",
                duration=round(run.duration, 1) if run.duration is not None else None)
    return data


@bp.get("/scheduled-tasks/runs/<id:run_id>/progress")
@roles_required(ADMIN)
def task_run_progress(run_id: int) -> Response:
    run = _run(run_id)
    if run.status == TaskRun.RUNNING:
        sweep_stale()
        db.session.refresh(run)
    return jsonify(progress_json(run))


@bp.post("/scheduled-tasks/runs/<id:run_id>/confirm")
@roles_required(ADMIN)
def task_run_confirm(run_id: int) -> Response:
    held = _run(run_id)
    _check_action()
    if held.status != TaskRun.CONFIRM:
        abort(409)
    task = db.session.get(ScheduledTask, held.task_id) if held.task_id else None
    run = create_run(kind=held.kind, datasource_id=held.datasource_id, trigger="manual", actor=current_user.email,
                     task=task, confirm_removals=True)
    enqueue_run(run.id)
    audit.record("task.confirm_removals", str(held.datasource_id), run_id=run.id, held_run_id=held.id,
                 pending=(held.summary or {}).get("guard", {}).get("pending"))
    db.session.commit()
    return redirect(url_for("admin.task_run_detail", run_id=run.id))
