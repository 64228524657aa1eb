"""Declaring the roles a view needs: `@roles_required(Role.ADMINISTRATOR, ...)` means any one of them."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user

from core.extensions import login_manager

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


def _listed(user: Any, users: list[str], roles: list[str]) -> bool:
    return user.email in {email.lower() for email in users} or user.has_any_role(*roles)


def can_administer_datasource(user: Any, datasource: Any) -> bool:
    """Connection administrators: edit, authorize, change security, delete (blank: the admin-area roles)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if not datasource.admin_users and not datasource.admin_roles:
        return bool(user.has_any_role("Administrator", "Manage datasources"))
    return _listed(user, datasource.admin_users, datasource.admin_roles)


def can_use_datasource(user: Any, datasource: Any) -> bool:
    """Connection users: run the datasource's operations (blank: the admin-area roles)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if not datasource.user_users and not datasource.user_roles_allowed:
        return bool(user.has_any_role("Administrator", "Manage datasources"))
    return _listed(user, datasource.user_users, datasource.user_roles_allowed)
