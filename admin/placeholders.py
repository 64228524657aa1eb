"""Administration pages whose issue has not landed yet: they say so instead of 404."""

from flask import render_template

from admin import bp
from core.access import roles_required
from core.models import Role


@bp.get("/scheduled-tasks")
@roles_required(Role.ADMINISTRATOR)
def scheduled_tasks() -> str:
    return render_template("admin/coming.html", title="Scheduled tasks")
