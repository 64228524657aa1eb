"""What the Office 365 list pages share: reading search, filters, sort and page size from the query string, and
turning Graph's nextLinks into signed Previous/Next cursors (datasources.cursors)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app, request, url_for

from admin.office365.common import attempt
from core.models import Datasource
from datasources import cursors
from office365.errors import FieldError, Office365Error
from office365.listing import PAGE_SIZES, ListQuery, checked_list_query

SORT_LABELS = {"displayName": "Name", "userPrincipalName": "UPN", "createdDateTime": "Created"}
USER_FILTER_LABELS = (("", "Any account"), ("enabled", "Enabled"), ("disabled", "Disabled"))
LICENCE_FILTER_LABELS = (("", "Any licence"), ("licensed", "Licensed"), ("unlicensed", "Unlicensed"))
GROUP_TYPE_LABELS = (("", "Any type"), ("type:microsoft365", "Microsoft 365"), ("type:security", "Security"),
                     ("type:mail_enabled_security", "Mail-enabled security"),
                     ("type:distribution", "Distribution list"))


@dataclass(frozen=True)
class ListView:
    """A list page's state: the query asked, what Graph answered, the links around it, or what went wrong."""

    query: ListQuery
    result: Any
    pager: cursors.Pager | None
    error: Office365Error | None
    args: dict[str, Any]  # the query string that reproduces the list (for links, forms and the bulk selection)

    @property
    def department(self) -> str:
        return next((t.split(":", 1)[1] for t in self.query.filters if t.startswith("department:")), "")

    def has(self, token: str) -> bool:
        return token in self.query.filters

    def url(self, endpoint: str, cursor: str | None = None, **scope: Any) -> str:
        """This list at another page (`cursor`; None: page 1), under the same search, filters and sort."""
        return url_for(endpoint, **scope, **self.args, **({"cursor": cursor} if cursor else {}))


def query_from_args(kind: str) -> ListQuery:
    """The list's query from `q`, `filter` (repeated), `department`, `sort` and `size`; `FieldError` when bad."""
    tokens = [t for t in request.args.getlist("filter") if t]
    department = request.args.get("department", "").strip()
    if department:
        tokens.append(f"department:{department}")
    size_text = request.args.get("size", "").strip()
    if size_text and not (size_text.isascii() and size_text.isdigit()):
        raise FieldError("page_size", "Choose a page size from the list.")
    size = int(size_text) if size_text else 50
    if size not in PAGE_SIZES:
        raise FieldError("page_size", f"Choose a page size of {', '.join(map(str, PAGE_SIZES))}.")
    return checked_list_query(kind, q=request.args.get("q", ""), filters=tokens, sort=request.args.get("sort", ""),
                              page_size=size)


def query_args(query: ListQuery) -> dict[str, Any]:
    """The query string of a list query (what the list's own links and forms carry)."""
    args: dict[str, Any] = {}
    if query.q:
        args["q"] = query.q
    plain = [t for t in query.filters if not t.startswith("department:")]
    if plain:
        args["filter"] = plain
    department = next((t.split(":", 1)[1] for t in query.filters if t.startswith("department:")), "")
    if department:
        args["department"] = department
    if query.sort:
        args["sort"] = query.sort
    if query.page_size != 50:
        args["size"] = query.page_size
    return args


def read_list(ds: Datasource, operation: str, kind: str, fetch: Callable[[Any, ListQuery, str | None], Any],
              **scope: Any) -> ListView:
    """Read one page of a list: the query from the URL, the page its cursor names, and the links around it.

    `fetch(access, query, graph_link)` returns a page with `next_cursor` (Graph's nextLink) and `count`.
    """
    try:
        query = query_from_args(kind)
    except FieldError as exc:
        empty = ListQuery()
        return ListView(empty, None, None, exc, {})
    fingerprint = cursors.fingerprint(kind=kind, q=query.q, filters=query.filters, sort=query.sort,
                                      size=query.page_size, **scope)
    args = query_args(query)
    try:
        position = cursors.decode(request.args.get("cursor"), fingerprint)
    except FieldError as exc:
        return ListView(query, None, None, exc, args)
    result, error = attempt(ds, operation, lambda a: fetch(a, query, position.link))
    pager = cursors.pager(position, result.next_cursor, result.count, fingerprint) if result is not None else None
    return ListView(query, result, pager, error, args)


def bulk_preview_url(datasource_id: int) -> str | None:
    """Where a selection goes (the bulk preview, SELECTION.md), when that page exists in this build."""
    if "admin.o365_bulk_preview" not in current_app.view_functions:
        return None
    return url_for("admin.o365_bulk_preview", datasource_id=datasource_id)
