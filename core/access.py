"""Declaring the roles a view needs: `@roles_required(Role.ADMINISTRATOR, ...)` means any one of them."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user

from core.extensions import db, login_manager
from core.models import group_members

F = TypeVar("F", bound=Callable[..., Any])


def user_has_any_role(*names: str) -> bool:
    return bool(current_user.is_authenticated and current_user.has_any_role(*names))


def roles_required(*names: str) -> Callable[[F], F]:
    """Signed-out visitors go to sign-in; signed-in users without one of `names` get 403."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.has_any_role(*names):
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_roles = names  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator


def _in_local_groups(user: Any, group_ids: list[int]) -> bool:
    if not group_ids or not getattr(user, "id", None):
        return False

    found = db.session.execute(db.select(group_members.c.group_id).where(
        group_members.c.user_id == user.id, group_members.c.group_id.in_(group_ids)).limit(1)).first()
    return found is not None


def _allowed(user: Any, users: list[str], roles: list[str], groups: list[int]) -> bool:
    """Listed by email, by role or by local group; with nothing listed, the admin-area roles."""
    if not getattr(user, "is_authenticated", False):
        return False
    if not users and not roles and not groups:
        return bool(user.has_any_role("Administrator", "Manage datasources"))
    return (user.email in {email.lower() for email in users} or user.has_any_role(*roles)
            or _in_local_groups(user, groups))


def can_administer_datasource(user: Any, datasource: Any) -> bool:
    """Connection administrators: edit, authorize, change security, delete."""
    return _allowed(user, datasource.admin_users or [], datasource.admin_roles or [], datasource.admin_groups or [])


def can_use_datasource(user: Any, datasource: Any) -> bool:
    """Connection users: run the datasource's operations."""
    return _allowed(user, datasource.user_users or [], datasource.user_roles_allowed or [],
                    datasource.user_groups_allowed or [])
