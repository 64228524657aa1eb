"""Server-side paging and CSV helpers shared by admin list pages."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from flask import Response
from sqlalchemy import Select
from sqlalchemy.orm import Session

from core.converters import int_arg
from core.extensions import db

PER_PAGE_CHOICES = (25, 50, 100)
CSV_FETCH_ROWS = 500  # rows fetched from the database per round trip while streaming


def page_args() -> tuple[int, int]:
    """`page` and `per_page` from the query: ASCII digits only (422 otherwise); a page past the end is empty."""
    page = int_arg("page", 1, 0, 10**9)
    per_page = int_arg("per_page", 25, 0, 10**6)
    return max(page, 1), per_page if per_page in PER_PAGE_CHOICES else 25


def csv_response(filename: str, header: Sequence[str], statement: Select,
                 row: Callable[[Any], Sequence[object]]) -> Response:
    """Stream a CSV download of `statement`'s objects, one `row(obj)` each (memory stays flat however many).

    The body is sent after the view has returned and its app context (with the request's database session) has
    been torn down, so the rows are read in a session of the stream's own, opened when sending starts and closed
    when it ends (or the client goes away).
    """
    engine = db.engine

    def generate() -> Iterator[str]:
        with Session(engine) as session:
            yield from csv_lines(header, session.scalars(statement.execution_options(yield_per=CSV_FETCH_ROWS)), row)

    response = Response(generate(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def csv_lines(header: Sequence[str], items: Iterable[Any], row: Callable[[Any], Sequence[object]]) -> Iterator[str]:
    """CSV text, the header then one line per item as it comes (formulas neutralised): a lazy source stays lazy."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield _take(buffer)
    for item in items:
        writer.writerow([_cell(value) for value in row(item)])
        yield _take(buffer)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate(0)
    return text


def _cell(value: object) -> str:
    """Neutralise spreadsheet formulas (CSV injection) in exported text."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
