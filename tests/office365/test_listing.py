"""The list pages' query vocabulary as Graph query options (office365/listing.py, docs/microsoft.md §5.11)."""

from __future__ import annotations

import pytest

from office365.errors import FieldError
from office365.listing import ListQuery, checked_list_query, graph_filter, graph_params


def test_search_and_filters_become_one_filter_and_always_an_advanced_counted_query() -> None:
    query = checked_list_query("users", q="O'Neil", filters=["enabled", "department:R&D", "enabled", ""],
                               sort="-displayName", page_size=25)
    assert query == ListQuery("O'Neil", ("enabled", "department:R&D"), "-displayName", 25)
    assert graph_params("users", query, "id") == {
        "$select": "id", "$top": 25, "$count": "true", "$orderby": "displayName desc",
        "$filter": "(startswith(displayName,'O''Neil') or startswith(mail,'O''Neil') or "
                   "startswith(userPrincipalName,'O''Neil')) and (accountEnabled eq true) and (department eq 'R&D')"}
    assert graph_filter("users", ListQuery(filters=("unlicensed",))) == "assignedLicenses/$count eq 0"
    assert graph_filter("groups", ListQuery(filters=("type:microsoft365",))) == "groupTypes/any(c:c eq 'Unified')"
    assert graph_filter("users", ListQuery()) is None and "$orderby" not in graph_params("users", ListQuery(), "id")


@pytest.mark.parametrize(("kind", "parts", "field"), [
    ("users", {"filter": ["type:security"]}, "filter"),
    ("groups", {"filter": ["enabled"]}, "filter"),
    ("users", {"filter": ["department:"]}, "filter"),
    ("members", {"sort": "userPrincipalName"}, "sort"),
    ("groups", {"sort": "-createdDateTime"}, "sort"),
    ("users", {"page_size": 1000}, "page_size"),
    ("users", {"q": "x" * 257}, "q"),
])
def test_what_graph_cannot_do_is_refused_naming_the_part(kind: str, parts: dict, field: str) -> None:
    with pytest.raises(FieldError) as refused:
        checked_list_query(kind, q=parts.get("q", ""), filters=parts.get("filter", ()), sort=parts.get("sort", ""),
                           page_size=parts.get("page_size"))
    assert refused.value.field == field
