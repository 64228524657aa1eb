"""Operation registry, the access an operation runs with, and input checks done before anything is sent."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import quote, urlsplit

from office365 import odata
from office365.errors import FieldError, WriteNotAllowed
from office365.graph import GraphClient

P = ParamSpec("P")
R = TypeVar("R")

Kind = Literal["read", "write"]

# -- registry and access -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphAccess:
    """What an operation runs with: the datasource's client and whether it may write."""

    client: GraphClient
    can_write: bool = False

    @property
    def granted_scopes(self) -> frozenset[str]:
        return frozenset(self.client.tokens.granted_scopes)


@dataclass(frozen=True)
class Operation:
    name: str
    label: str
    kind: Kind
    scopes: tuple[str, ...]  # any one of these delegated scopes allows the operation
    func: Callable[..., Any]


OPERATIONS: dict[str, Operation] = {}
BULK_OPERATIONS: dict[str, Operation] = {}

ENABLE_WRITES_HINT = (
    'To enable it, tick "Read and write users & groups" on the data source and Re-Authorize it, '
    "so that an administrator grants the permission."
)


def short_scope(scope: str) -> str:
    return scope.rsplit("/", 1)[-1].lower()


def check_write_allowed(access: GraphAccess, op: Operation) -> None:
    """Raise `WriteNotAllowed` unless the datasource may write and its grant holds one of `op.scopes`."""
    if not access.can_write:
        raise WriteNotAllowed(
            f'"{op.label}" changes the tenant, but this data source is read-only; nothing was sent. '
            + ENABLE_WRITES_HINT
        )
    granted = {short_scope(s) for s in access.granted_scopes}
    if not any(s.lower() in granted for s in op.scopes):
        raise WriteNotAllowed(
            f'"{op.label}" needs the Graph permission {" or ".join(op.scopes)}, which the data source\'s grant '
            "lacks; nothing was sent. " + ENABLE_WRITES_HINT
        )


def operation(
    name: str, label: str, kind: Kind, scopes: tuple[str, ...], *, registry: dict[str, Operation] | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register an operation; for writes, check permission before the function runs."""

    def wrap(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            if kind == "write":
                access = args[0] if args else kwargs["access"]
                assert isinstance(access, GraphAccess)
                check_write_allowed(access, op)
            return func(*args, **kwargs)

        op = Operation(name, label, kind, scopes, run)
        (OPERATIONS if registry is None else registry)[name] = op
        run.operation = op  # type: ignore[attr-defined]
        return run

    return wrap


# -- inputs checked before sending ---------------------------------------------------------------------------

_UPN = re.compile(r"^[^\s/\\?#%]+@[^\s/\\?#%@]+$")


def checked_object_id(value: str, what: str) -> str:
    if not odata.is_guid(value):
        raise FieldError(what, f"{value!r} is not a valid {what.replace('_', ' ')} (a directory object id).")
    return value.lower()


def user_path_key(value: str) -> str:
    """A user id or UPN, safe as one URL path segment (guest UPNs hold `#`)."""
    if odata.is_guid(value):
        return value.lower()
    if isinstance(value, str) and _UPN.match(value):
        return quote(value, safe="@")
    raise FieldError("user_id", f"{value!r} is neither a user object id nor a user principal name.")


def checked_cursor(access: GraphAccess, cursor: str | None, path: str) -> str:
    """The URL to fetch: a previous page's cursor (checked to point at our Graph) or the collection path."""
    if cursor is None:
        return path
    if not (isinstance(cursor, str) and access.client.owns(cursor) and urlsplit(cursor).path.endswith(path)):
        raise FieldError("cursor", "This page link is not valid here; start again from the first page.")
    return cursor


def checked_page_size(page_size: int) -> int:
    if not 1 <= page_size <= 999:
        raise FieldError("page_size", "Page size must be between 1 and 999.")
    return page_size


FindMode = Literal["prefix", "search"]


def checked_query(query: str) -> str:
    query = (query or "").strip()
    if not query:
        raise FieldError("query", "Type at least one character to search for.")
    if len(query) > 256:
        raise FieldError("query", "The search text is too long (256 characters at most).")
    return query

