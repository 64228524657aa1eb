"""Running an Office 365 operation for a caller, shared by the browser pages and the JSON API.

It finds the datasource the caller may use, builds the Graph client from the datasource's grant, runs the
operation, and audits every write (and every refused or failed one) with who, datasource, operation, target,
a summary of the input, the outcome and Graph's request-id.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g
from sqlalchemy import func, select

from core import audit
from core.access import can_use_datasource
from core.api_keys import ApiKey
from core.extensions import db
from core.models import Datasource, User
from datasources.grant import graph_client
from office365.errors import FieldError, NoSeatsLeft, Office365Error, UsageLocationRequired, WriteNotAllowed
from office365.graph import RetryPolicy, Timeouts
from office365.operations import BULK_OPERATIONS, OPERATIONS, GraphAccess, Operation

T = TypeVar("T")

# Refusals happen before anything is written; failures are answers from Graph (or no answer).
REFUSALS = (WriteNotAllowed, FieldError, UsageLocationRequired, NoSeatsLeft)


@dataclass(frozen=True)
class Caller:
    """Who runs an operation: a signed-in user, or a user through one of their API keys."""

    user: User
    api_key: ApiKey | None = None

    @property
    def actor(self) -> str:
        if self.api_key is not None:
            return f"{self.user.email} (API key {self.api_key.label} {self.api_key.name})"
        return self.user.email


class DatasourceUnavailable(Exception):
    """The datasource is unknown, not the caller's to use, or not authorized yet."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def usable_datasources(user: User) -> list[Datasource]:
    statement = select(Datasource).where(Datasource.kind == "office365").order_by(func.lower(Datasource.name))
    return [ds for ds in db.session.scalars(statement) if can_use_datasource(user, ds)]


def datasource_for(user: User, datasource_id: int) -> Datasource:
    """The datasource if `user` is one of its Connection users and it has been authorized."""
    datasource = db.session.get(Datasource, datasource_id)
    if datasource is None or datasource.kind != "office365":
        raise DatasourceUnavailable(404, "datasource_not_found", f"There is no Office 365 datasource {datasource_id}.")
    if not can_use_datasource(user, datasource):
        raise DatasourceUnavailable(
            403, "forbidden",
            f'You are not one of the Connection users of the data source "{datasource.name}". Ask one of its '
            "connection administrators to add you in its Security settings.")
    if datasource.status == Datasource.INCOMPLETE:
        raise DatasourceUnavailable(
            409, "datasource_not_ready",
            f'The datasource "{datasource.name}" has not been authorized yet: an administrator must click Authorize.')
    return datasource


def graph_access(datasource: Datasource) -> GraphAccess:
    """The operation's access: the datasource's client, allowed to write when the datasource is read-write.

    `GRAPH_RETRY` / `GRAPH_TIMEOUTS` (RetryPolicy / Timeouts) in the app config override the client defaults;
    tests use them to keep fault scenarios short.
    """
    client = graph_client(datasource)
    retry = current_app.config.get("GRAPH_RETRY")
    timeouts = current_app.config.get("GRAPH_TIMEOUTS")
    if isinstance(retry, RetryPolicy):
        client.retry = retry
    if isinstance(timeouts, Timeouts):
        client.timeouts = timeouts
    return GraphAccess(client, can_write=datasource.read_write)


def page_deadline() -> float:
    """What is left of this request's time to wait on Graph: `O365_PAGE_DEADLINE` seconds (12 by default) from
    its first read, shared by every read the page (or API call) makes, retries and Retry-After waits included;
    past it the page says what happened and offers to try again."""
    budget = float(current_app.config.get("O365_PAGE_DEADLINE", 12.0))
    started = g.setdefault("o365_reads_started", time.monotonic())
    return max(0.5, budget - (time.monotonic() - started))


def operation(name: str) -> Operation:
    return OPERATIONS.get(name) or BULK_OPERATIONS[name]


def run(datasource: Datasource, caller: Caller, name: str, target: str, summary: dict[str, Any],
        call: Callable[[GraphAccess], T], *, audit_it: bool | None = None,
        outcome_of: Callable[[T], dict[str, Any]] | None = None, deadline: float | None = None) -> T:
    """Run `call` with the datasource's access; writes are audited whatever happens.

    `summary` is a short, secret-free description of the input; `outcome_of` extracts what to keep of a result
    (request-id, counts). `audit_it` defaults to "the operation is a write". `deadline` bounds the whole call's
    waiting on Graph (a page's reads: `page_deadline()`).
    """
    op = operation(name)
    should_audit = op.kind == "write" if audit_it is None else audit_it
    access: GraphAccess | None = None  # stays None when building the client already failed
    try:
        access = graph_access(datasource)
        if deadline is not None:
            access.client.limit_to(deadline)
        result = call(access)
    except Office365Error as exc:
        if should_audit or isinstance(exc, WriteNotAllowed):
            outcome = "refused" if isinstance(exc, REFUSALS) else "failure"
            last_request_id = access.client.last_request_id if access is not None else None
            _record(datasource, caller, op, target, summary, outcome, error_code=exc.error_code,
                    message=exc.message, request_id=exc.request_id or last_request_id)
        raise
    if should_audit:
        kept = outcome_of(result) if outcome_of else {}
        kept.setdefault("request_id", getattr(result, "request_id", None) or access.client.last_request_id)
        _record(datasource, caller, op, target, summary, "success", **kept)
    return result


def refuse(datasource: Datasource | None, caller: Caller, name: str, target: str, summary: dict[str, Any],
           message: str, code: str = "forbidden") -> None:
    """Audit a write refused before the operation ran (the caller may not use the datasource)."""
    op = operation(name)
    if op.kind == "write":
        _record(datasource, caller, op, target, summary, "refused", error_code=code, message=message)


def _record(datasource: Datasource | None, caller: Caller, op: Operation, target: str, summary: dict[str, Any],
            outcome: str, **detail: Any) -> None:
    audit.record(
        f"o365.{op.name}", target, outcome=outcome, actor=caller.actor,
        datasource=datasource.name if datasource else None, operation=op.label,
        input=summary, via="api_key" if caller.api_key else "session", **detail,
    )
    db.session.commit()
