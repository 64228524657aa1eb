"""What a list page asks of Graph: search text, filter tokens, sort and page size, as Graph query options.

One vocabulary for the User List, the Group List, a group's members and the bulk selection ("all N matching",
SELECTION.md): `q` is a prefix on name, mail or UPN; filter tokens are `enabled`, `disabled`, `licensed`,
`unlicensed`, `department:<name>` (users and members) and `type:<group type>` (groups). Every list query is an
advanced query (`ConsistencyLevel: eventual` + `$count=true`, docs/microsoft.md §5.11), so Graph returns the total
with the first page and accepts `$filter` together with `$orderby`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from office365 import odata
from office365.errors import FieldError

USER_FILTERS = {
    "enabled": "accountEnabled eq true",
    "disabled": "accountEnabled eq false",
    "licensed": "assignedLicenses/$count ne 0",
    "unlicensed": "assignedLicenses/$count eq 0",
}
UNIFIED = "groupTypes/any(c:c eq 'Unified')"
GROUP_TYPE_FILTERS = {
    "microsoft365": UNIFIED,
    "security": "securityEnabled eq true and mailEnabled eq false",
    "mail_enabled_security": f"securityEnabled eq true and mailEnabled eq true and not {UNIFIED}",
    "distribution": f"securityEnabled eq false and mailEnabled eq true and not {UNIFIED}",
}
#: What each list can be sorted by: Graph's `$orderby` support (docs/microsoft.md §5.11).
SORTS = {
    "users": ("displayName", "userPrincipalName", "createdDateTime"),
    "groups": ("displayName",),
    "members": ("displayName",),
}
PAGE_SIZES = (25, 50, 100, 200)
MAX_Q = 256
MAX_DEPARTMENT = 64


@dataclass(frozen=True)
class ListQuery:
    """A list page's question. `sort` is a property name, `-name` for descending, "" for Graph's own order."""

    q: str = ""
    filters: tuple[str, ...] = ()
    sort: str = ""
    page_size: int = 50

    @property
    def narrowed(self) -> bool:
        """Whether the query picks some of the collection (search or filter), not just orders it."""
        return bool(self.q or self.filters)


def checked_list_query(kind: str, *, q: str = "", filters: Sequence[str] = (), sort: str = "",
                       page_size: int | None = None) -> ListQuery:
    """The query if every part is valid for `kind` (users, groups, members); `FieldError` naming the part."""
    q = (q or "").strip()
    if len(q) > MAX_Q:
        raise FieldError("q", f"The search text is too long ({MAX_Q} characters at most).")
    tokens = tuple(dict.fromkeys(t.strip() for t in filters if t and t.strip()))
    for token in tokens:
        _filter_clause(kind, token)
    sort = (sort or "").strip()
    if sort and sort.lstrip("-") not in SORTS[kind]:
        raise FieldError("sort", f"Sort by one of: {', '.join(SORTS[kind])} (a leading '-' sorts descending).")
    size = 50 if page_size is None else page_size
    if not 1 <= size <= 999:
        raise FieldError("page_size", "Page size must be between 1 and 999.")
    return ListQuery(q, tokens, sort, size)


def _filter_clause(kind: str, token: str) -> str:
    if kind in ("users", "members"):
        if token in USER_FILTERS:
            return USER_FILTERS[token]
        if token.startswith("department:"):
            name = token.split(":", 1)[1].strip()
            if not name or len(name) > MAX_DEPARTMENT:
                raise FieldError("filter", f"Name a department of 1 to {MAX_DEPARTMENT} characters.")
            return odata.eq("department", name)
        raise FieldError("filter", f'Unknown filter "{token[:40]}": use enabled, disabled, licensed, unlicensed or '
                                   "department:<name>.")
    if token.startswith("type:") and token[5:] in GROUP_TYPE_FILTERS:
        return GROUP_TYPE_FILTERS[token[5:]]
    raise FieldError("filter", f'Unknown filter "{token[:40]}": use type:{", type:".join(GROUP_TYPE_FILTERS)}.')


SEARCHED = {"users": ("displayName", "mail", "userPrincipalName"), "members": ("displayName", "mail",
                                                                               "userPrincipalName"),
            "groups": ("displayName", "mail", "mailNickname")}


def graph_filter(kind: str, query: ListQuery) -> str | None:
    """The `$filter` of the query (None: the whole collection): the prefix search AND every filter token."""
    clauses: list[str] = []
    if query.q:
        clauses.append(odata.any_of(*(odata.startswith(p, query.q) for p in SEARCHED[kind])))
    clauses.extend(_filter_clause(kind, token) for token in query.filters)
    if len(clauses) == 1:
        return clauses[0]
    return " and ".join(f"({c})" for c in clauses) or None


def graph_params(kind: str, query: ListQuery, select: str) -> dict[str, str | int]:
    """The query options of the first page (later pages follow Graph's nextLink, which keeps them)."""
    params: dict[str, str | int] = {"$select": select, "$top": query.page_size, "$count": "true"}
    flt = graph_filter(kind, query)
    if flt:
        params["$filter"] = flt
    if query.sort:
        params["$orderby"] = f"{query.sort.lstrip('-')} desc" if query.sort.startswith("-") else query.sort
    return params
