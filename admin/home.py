from flask import render_template
from flask_login import current_user
from sqlalchemy import select

from admin import bp
from core.access import can_administer_datasource
from core.extensions import db
from core.models import Datasource
from datasources.grant import reauthorization_warning
from jobs.models import ScheduledTask
from jobs.runner import last_failed_runs


@bp.get("/")
def index() -> str:
    """The admin home: the cards, and what needs attention (grants due for re-authorization or broken)."""
    attention = []
    for datasource in db.session.scalars(select(Datasource).order_by(Datasource.name)):
        if not can_administer_datasource(current_user, datasource):
            continue
        if datasource.status == Datasource.NEEDS_REAUTHORIZATION:
            attention.append((datasource, f"needs to be re-authorized: {datasource.last_error or 'grant refused'}"))
        elif warning := reauthorization_warning(datasource):
            attention.append((datasource, warning))
    failed_runs = ([run for run in last_failed_runs() if run.kind in ScheduledTask.KINDS]  # bulk jobs: own pages
                   if current_user.has_any_role("Administrator") else [])
    return render_template("admin/index.html", attention=attention, failed_runs=failed_runs)
