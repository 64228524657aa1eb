"""Strict numbers from outside: URL segments, form fields, query arguments and settings.

`int()` and `str.isdigit()` accept far more than a person types: "１２" (full-width), "²" (superscript, which
`int()` then refuses), " 12 ", "1_000", and integers no database column holds. Everything that turns outside
text into an integer goes through `parse_int` (ASCII digits only, bounded), and every integer in a route uses the
`id` converter (registered as `int` too, so `<id:...>` cannot slip back in unbounded).
"""

from __future__ import annotations

import re

from flask import request
from werkzeug.exceptions import UnprocessableEntity
from werkzeug.routing import IntegerConverter, Map

# The largest key a BIGINT column holds (PostgreSQL and SQLite both stop at 2**63 - 1); INTEGER ids stop earlier.
DB_BIGINT_MAX = 2**63 - 1
DB_INT_MAX = 2**31 - 1
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_int(text: str | None, low: int = 0, high: int = DB_BIGINT_MAX) -> int | None:
    """`text` as an integer when it is ASCII digits only and within [low, high]; else None.

    No sign, no spaces, no underscores, no Unicode digits: what a form or URL legitimately carries.
    """
    if text is None or not _ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


class InvalidNumber(UnprocessableEntity):
    """422 `invalid_number`: a query argument that should be a whole number is not one we can use."""

    code_name = "invalid_number"

    def __init__(self, name: str, low: int, high: int) -> None:
        super().__init__(f"'{name}' must be a whole number from {low} to {high}, in the digits 0-9.")


def int_arg(name: str, default: int, low: int = 0, high: int = DB_BIGINT_MAX) -> int:
    """Query argument `name` as a strict integer: `default` when absent or empty, 422 when malformed."""
    raw = request.args.get(name, "")
    if raw == "":
        return default
    value = parse_int(raw, low, high)
    if value is None:
        raise InvalidNumber(name, low, high)
    return value


def ascii_int(value: object) -> int:
    """A WTForms `coerce` that takes ASCII digits only (ValueError otherwise, which the field reports)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = parse_int(str(value).strip())
    if number is None:
        raise ValueError("not a whole number")
    return number


class IdConverter(IntegerConverter):
    """A database id in a path: ASCII digits, 1 to 2**31 - 1. Anything else is no match, so 404.

    Werkzeug's own `int` matches `\\d+`, which takes Unicode digits ("１２" routes to id 12) and any length; our
    primary keys are INTEGER columns (32-bit on PostgreSQL), so a larger number names nothing.
    """

    regex = r"[0-9]{1,19}"
    part_isolating = True

    def __init__(self, map: Map, *args: object, **kwargs: object) -> None:
        super().__init__(map, min=1, max=DB_INT_MAX)


def register_converters(app) -> None:  # type: ignore[no-untyped-def]
    """`<id:...>` for database ids; `<id:...>` is rebound to the same bounded converter."""
    app.url_map.converters["id"] = IdConverter
    app.url_map.converters["int"] = IdConverter
