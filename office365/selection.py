"""A list page's "all N matching" as a Graph query, shared by the list pages and the bulk preview (docs/selection.md).

`source` is `users` (the User List) or `group:<group id>` (a group's members); `q` the search box's text (prefix on
name, mail or UPN); `filters` the list's filter tokens. The same query the list showed is read again, page by page,
so "all matching" is exactly what the admin saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from office365 import odata
from office365.errors import FieldError
from office365.registry import GraphAccess, checked_object_id

FILTER_TOKENS = {
    "enabled": "accountEnabled eq true",
    "disabled": "accountEnabled eq false",
    "licensed": "assignedLicenses/$count ne 0",
    "unlicensed": "assignedLicenses/$count eq 0",
}
MAX_Q = 256


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
    q = (q or "").strip()
    if len(q) > MAX_Q:
        raise FieldError("q", f"The search text is too long ({MAX_Q} characters at most).")
    tokens: list[str] = []
    for token in dict.fromkeys(t.strip() for t in filters if t.strip()):
        if token not in FILTER_TOKENS and not token.startswith("department:"):
            raise FieldError("filter", f'Unknown filter "{token[:40]}": use enabled, disabled, licensed, '
                                       "unlicensed or department:<name>.")
        tokens.append(token)
    return Matching(source, q, tuple(tokens))


def graph_filter(matching: Matching) -> str | None:
    """The `$filter` of the selection (None: everyone in the source)."""
    clauses: list[str] = []
    if matching.q:
        props = ("displayName", "mail", "userPrincipalName")
        clauses.append(odata.any_of(*(odata.startswith(p, matching.q) for p in props)))
    for token in matching.filters:
        if token.startswith("department:"):
            clauses.append(odata.eq("department", token.split(":", 1)[1]))
        else:
            clauses.append(FILTER_TOKENS[token])
    return " and ".join(f"({c})" if " or " in c else c for c in clauses) or None


def iter_matching(access: GraphAccess, matching: Matching, select: str) -> Iterator[dict[str, Any]]:
    """Every object of the selection, 999 per page (`$count` and `ConsistencyLevel` when the filter needs it)."""
    path = "/users" if matching.source == "users" else f"/groups/{matching.group_id}/members"
    params: dict[str, str | int] = {"$select": select, "$top": 999}
    flt = graph_filter(matching)
    if flt:
        params["$filter"] = flt
        params["$count"] = "true"
    yield from access.client.iter_items(path, params=params, advanced=bool(flt))
