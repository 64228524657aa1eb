"""Administration: one module per resource, all on one blueprint under /admin/."""

from flask import Blueprint, request
from flask_login import current_user

from core.access import roles_required
from core.extensions import login_manager
from core.models import Role

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Endpoints open to any signed-in user because they check datasource security themselves (Connection users
# of a datasource may run its operations without an admin-area role). Filled by `connection_user_view`.
CONNECTION_USER_ENDPOINTS: set[str] = set()


def connection_user_view(endpoint: str) -> None:
    CONNECTION_USER_ENDPOINTS.add(f"admin.{endpoint}")


@bp.before_request
def require_admin_area():  # type: ignore[no-untyped-def]
    """Everything under /admin/ needs Administrator or Manage datasources; views may narrow it further."""
    if request.endpoint in CONNECTION_USER_ENDPOINTS:
        return None if current_user.is_authenticated else login_manager.unauthorized()
    return _admin_area_roles()


@roles_required(*Role.ADMIN_AREA)
def _admin_area_roles() -> None:
    return None


@bp.app_context_processor
def admin_navigation() -> dict:
    return {"can_administer": bool(current_user.is_authenticated and current_user.has_any_role(*Role.ADMIN_AREA))}


from admin import (  # noqa: E402,F401  (views attach themselves to bp)
    access_policies,
    access_requests,
    api_keys,
    audit_log,
    datasources,
    decisions,
    home,
    import_settings,
    live_access,
    office365,
    scheduled_tasks,
    sso,
    users,
)
