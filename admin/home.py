from flask import render_template
from flask_login import current_user
from sqlalchemy import select

from admin import bp
from core.access import can_administer_datasource
from core.extensions import db
from core.models import Datasource
from office365.connection import reauthorization_warning


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
    return render_template("admin/index.html", attention=attention)
