"""A list page's "all N matching" for the bulk preview (docs/selection.md), read with the list's own query.

`source` is `users` (the User List) or `group:<group id>` (a group's members); `q` the search box's text (prefix on
name, mail or UPN); `filters` the list's filter tokens. The query is built by office365.listing, as the list page
builds it, and read again page by page, so "all matching" is exactly what the admin saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from office365 import listing
from office365.errors import FieldError
from office365.groups import members_path
from office365.listing import ListQuery, checked_list_query, graph_params
from office365.registry import GraphAccess, checked_object_id

MAX_Q = listing.MAX_Q


@dataclass(frozen=True)
class Matching:
    """An "all matching" selection: where, what was typed, which filters."""

    source: str
    q: str = ""
    filters: tuple[str, ...] = ()

    @property
    def group_id(self) -> str | None:
        return self.source.split(":", 1)[1] if self.source.startswith("group:") else None

    def describe(self) -> str:
        where = "users" if self.source == "users" else "members of the group"
        parts = [f'all {where}']
        if self.q:
            parts.append(f'matching "{self.q}"')
        if self.filters:
            parts.append("filtered by " + ", ".join(self.filters))
        return " ".join(parts)


def checked_matching(source: str, q: str = "", filters: Sequence[str] = ()) -> Matching:
    """The selection if it is well formed; `FieldError` naming the field otherwise."""
    source = (source or "").strip()
    if source != "users":
        if not source.startswith("group:"):
            raise FieldError("source", 'The selection source must be "users" or "group:<group id>".')
        source = "group:" + checked_object_id(source.split(":", 1)[1], "source")
    query = checked_list_query("users" if source == "users" else "members", q=q, filters=filters)
    return Matching(source, query.q, query.filters)


def iter_matching(access: GraphAccess, matching: Matching, select: str) -> Iterator[dict[str, Any]]:
    """Every object of the selection, 999 per page, read with the list page's own query (office365.listing): on a
    group, its members that are users when the list was searched or filtered, every member otherwise."""
    kind = "users" if matching.source == "users" else "members"
    query = ListQuery(matching.q, matching.filters, page_size=999)
    group = matching.group_id
    path = "/users" if group is None else members_path(group, users_only=query.narrowed)
    yield from access.client.iter_items(path, params=graph_params(kind, query, select), advanced=True)
