"""What the Office 365 operation pages share: the datasource for the signed-in Connection user, running an
operation (audited through `datasources.service`), and turning Office 365 errors into messages on the page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import flash, render_template
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.exc import SQLAlchemyError

from admin import bp, connection_user_view
from core.errors import error_response
from core.models import Datasource
from datasources.service import (
    Caller,
    DatasourceUnavailable,
    datasource_for,
    graph_access,
    operation,
    page_deadline,
    run,
    usable_datasources,
)
from office365.errors import Office365Error, ReauthorizationRequired
from office365.graph import StaticTokenSource
from office365.registry import GraphAccess

T = TypeVar("T")

TABS = (("o365_users", "Users"), ("o365_groups", "Groups"), ("o365_licences", "Licences"), ("o365_bulk", "Bulk"))


class ActionForm(FlaskForm):
    """CSRF only (confirmation buttons)."""


def route(rule: str, endpoint: str, methods: tuple[str, ...] = ("GET",)) -> Callable[[Callable[..., Any]], Any]:
    """Register an operation page, open to Connection users (it checks datasource security itself)."""

    def wrap(view: Callable[..., Any]) -> Any:
        connection_user_view(endpoint)
        return bp.route(f"/datasources/<id:datasource_id>/o365{rule}", endpoint=endpoint, methods=list(methods))(view)

    return wrap


@bp.app_context_processor
def office365_navigation() -> dict:
    """Whether to show "Office 365" in the menu: the user may run some datasource's operations."""
    if not current_user.is_authenticated:
        return {"office365_datasources": False}
    try:
        return {"office365_datasources": bool(usable_datasources(current_user))}
    except SQLAlchemyError:  # an error page must still render when the database is the problem
        return {"office365_datasources": False}


@bp.errorhandler(DatasourceUnavailable)
def _unavailable(exc: DatasourceUnavailable):  # type: ignore[no-untyped-def]
    return error_response(exc.status, exc.message, exc.code)


def datasource(datasource_id: int) -> Datasource:
    return datasource_for(current_user, datasource_id)


def caller() -> Caller:
    return Caller(current_user._get_current_object())


def attempt(ds: Datasource, name: str, call: Callable[[Any], T], target: str = "",
            summary: dict[str, Any] | None = None, **kw: Any) -> tuple[T | None, Office365Error | None]:
    """Run an operation; a failure comes back as the error (its message says what happened and what to do).

    A read waits on Graph at most the page deadline (`page_deadline()`); past it the page shows the error and a
    Retry button rather than keeping the browser (and a proxy's timeout) waiting.
    """
    if operation(name).kind == "read":
        kw.setdefault("deadline", page_deadline())
    try:
        return run(ds, caller(), name, target, summary or {}, call, **kw), None
    except Office365Error as exc:
        return None, exc


def flash_error(exc: Office365Error) -> None:
    flash(message_of(exc), "danger")


def streaming_access(ds: Datasource) -> GraphAccess:
    """The datasource's Graph access for a streamed download: the stream runs after the request's database session
    is gone, so it takes the access token with it (an hour's validity: 100,000 objects are ~100 Graph pages).
    `Office365Error` when no token can be had."""
    access = graph_access(ds)
    access.client.tokens = StaticTokenSource(access.client.tokens.access_token(),
                                             frozenset(access.client.tokens.granted_scopes))
    return access


def message_of(exc: Office365Error) -> str:
    message = str(exc)
    if isinstance(exc, ReauthorizationRequired):
        message += " (Data sources > this data source > Re-Authorize.)"
    return message


def page(template: str, ds: Datasource, tab: str, **context: Any) -> str:
    return render_template(f"admin/office365/{template}", ds=ds, tab=tab, tabs=TABS, **context)
