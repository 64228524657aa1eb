"""Administration: one module per resource, all on one blueprint under /admin/."""

from flask import Blueprint
from flask_login import current_user

from core.access import roles_required
from core.models import Role

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@roles_required(*Role.ADMIN_AREA)
def require_admin_area() -> None:
    """Everything under /admin/ needs Administrator or Manage datasources; views may narrow it further."""


@bp.app_context_processor
def admin_navigation() -> dict:
    return {"can_administer": bool(current_user.is_authenticated and current_user.has_any_role(*Role.ADMIN_AREA))}


from admin import audit_log, datasources, home, placeholders, users  # noqa: E402,F401  (views attach themselves to bp)
