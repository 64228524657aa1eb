"""Signed list cursors (datasources/cursors.py): opaque, bound to their query, Previous by a bounded stack."""

from __future__ import annotations

import pytest
from flask import Flask

from datasources import cursors
from office365.errors import FieldError

LINK = "https://graph.example/v1.0/users?$top=5&$skiptoken={}"


def _walk(pages: int, fingerprint: str) -> list[cursors.Pager]:
    """Pagers of pages 1..pages, each reached through the previous page's next cursor."""
    pagers, token = [], None
    for n in range(pages):
        position = cursors.decode(token, fingerprint)
        pager = cursors.pager(position, LINK.format(n + 1), 1234 if n == 0 else None, fingerprint)
        pagers.append(pager)
        token = pager.next_cursor
    return pagers


def test_cursors_hide_graph_links_and_carry_page_number_and_total(app: Flask) -> None:
    with app.test_request_context():
        fp = cursors.fingerprint(kind="users", q="ann", filters=(), sort="", size=5)
        pagers = _walk(4, fp)
        assert [p.number for p in pagers] == [1, 2, 3, 4] and all(p.total == 1234 for p in pagers)
        assert all("graph.example" not in (p.next_cursor or "") for p in pagers)
        assert pagers[0].previous_cursor is None and pagers[1].previous_cursor == ""
        back = cursors.decode(pagers[3].previous_cursor, fp)
        assert (back.number, back.link) == (3, LINK.format(2))
        assert cursors.decode(pagers[2].next_cursor, fp).link == LINK.format(3)


def test_a_cursor_for_another_query_or_edited_is_refused(app: Flask) -> None:
    with app.test_request_context():
        fp = cursors.fingerprint(kind="users", q="", filters=(), sort="", size=5)
        token = _walk(2, fp)[1].next_cursor
        assert token
        other = cursors.fingerprint(kind="users", q="", filters=(), sort="-displayName", size=5)
        for bad, fingerprint in ((token, other), (token[:-3] + "abc", fp), ("https://evil.example/v1.0/users", fp)):
            with pytest.raises(FieldError) as refused:
                cursors.decode(bad, fingerprint)
            assert refused.value.field == "cursor" and "not valid here" in refused.value.message


def test_previous_stops_where_the_stack_was_cut(app: Flask) -> None:
    with app.test_request_context():
        fp = cursors.fingerprint(kind="users")
        pagers = _walk(cursors.MAX_STACK + 5, fp)
        last = pagers[-1]
        assert len(last.next_cursor or "") < 2000  # compressed: a URL stays short however deep
        number, token, steps = last.number, last.previous_cursor, 0
        while token:
            position = cursors.decode(token, fp)
            assert position.number == number - 1
            number, steps = position.number, steps + 1
            token = cursors.pager(position, LINK.format(number), None, fp).previous_cursor
        # MAX_STACK links are kept: Previous reaches back that far, then only "First page" is offered.
        assert steps == cursors.MAX_STACK - 1 and token is None
