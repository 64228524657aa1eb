"""Opaque page cursors for the Office 365 lists (pages and the JSON API).

Graph pages by `@odata.nextLink`, an absolute URL holding the query and a `$skiptoken`. Shown raw it would leak the
Graph host into page links and invite tampering, so a cursor is the list of nextLinks that led to the page, signed
with the app's secret (itsdangerous, zlib-compressed: consecutive nextLinks of one query differ only in their
token) together with the total Graph gave on the first page and a fingerprint of the query it belongs to.

Previous works from a stack rather than by walking again from the first page: walking again costs one Graph
request per page already seen, the stack costs nothing but URL length, so it keeps the last `MAX_STACK` links;
further back than that the page offers "First page" only. A cursor from another query or another secret is
refused with a `FieldError` on `cursor`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from office365.errors import FieldError

MAX_STACK = 12
INVALID = "This page link is not valid here (the list changed or the link was edited); start again from page 1."


@dataclass(frozen=True)
class Position:
    """Where a list page is: the nextLinks followed to reach it (none on page 1), its number and the total."""

    links: tuple[str, ...] = ()
    number: int = 1
    total: int | None = None

    @property
    def link(self) -> str | None:
        """The Graph URL of this page (None: the first page, asked with the query itself)."""
        return self.links[-1] if self.links else None


def fingerprint(**query: Any) -> str:
    """A short digest of what defines a list (its kind, search, filters, sort, page size, group)."""
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="office365-list-cursor")


def decode(token: str | None, query_fingerprint: str) -> Position:
    """The position a cursor names (page 1 without one); `FieldError` when it was not made for this query."""
    if not token:
        return Position()
    try:
        state = _serializer().loads(token)
    except BadSignature:
        raise FieldError("cursor", INVALID) from None
    if not (isinstance(state, dict) and state.get("f") == query_fingerprint and isinstance(state.get("l"), list)
            and all(isinstance(x, str) for x in state["l"]) and isinstance(state.get("n"), int)):
        raise FieldError("cursor", INVALID)
    total = state.get("t")
    return Position(tuple(state["l"]), state["n"], total if isinstance(total, int) else None)


def _encode(links: tuple[str, ...], number: int, total: int | None, query_fingerprint: str) -> str:
    return str(_serializer().dumps({"l": list(links[-MAX_STACK:]), "n": number, "t": total,
                                    "f": query_fingerprint}))


@dataclass(frozen=True)
class Pager:
    """The links of a list page: to the next page, the previous one ("" = page 1) and whether there is one."""

    number: int
    total: int | None
    next_cursor: str | None
    previous_cursor: str | None  # "" for page 1, None when there is no previous page to go to
    can_go_first: bool

    def as_dict(self) -> dict[str, Any]:
        return {"page": self.number, "total": self.total, "next_cursor": self.next_cursor,
                "previous_cursor": self.previous_cursor}


def pager(position: Position, next_link: str | None, page_total: int | None, query_fingerprint: str) -> Pager:
    """Links for the page at `position` whose Graph answer had `next_link` (and, on page 1, `page_total`)."""
    total = position.total if position.links else page_total
    next_cursor = (_encode((*position.links, next_link), position.number + 1, total, query_fingerprint)
                   if next_link else None)
    previous: str | None = None
    if position.number == 2:
        previous = ""
    elif position.number > 2 and len(position.links) >= 2:
        previous = _encode(position.links[:-1], position.number - 1, total, query_fingerprint)
    return Pager(position.number, total, next_cursor, previous, position.number > 1)
