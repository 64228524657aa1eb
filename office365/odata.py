"""OData literal escaping for Graph queries, so no user input can change a query's meaning; Graph's
DateTimeOffset both ways.

`$filter` string literals are single-quoted with embedded quotes doubled (`'O''Neil'`); `$search` clauses are
double-quoted with `"` and `\\` backslash-escaped. Percent-encoding is left to `requests` (`params=`), which also
encodes `#`, `&` and `+`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def string_literal(value: str) -> str:
    """`value` as an OData string literal: `O'Neil` -> `'O''Neil'`."""
    if not isinstance(value, str):
        raise TypeError("OData string literal must be a str")
    return "'" + value.replace("'", "''") + "'"


def startswith(prop: str, value: str) -> str:
    return f"startswith({_property(prop)},{string_literal(value)})"


def eq(prop: str, value: str) -> str:
    return f"{_property(prop)} eq {string_literal(value)}"


def any_of(*clauses: str) -> str:
    return " or ".join(clauses)


def search_clause(prop: str, text: str) -> str:
    """One `$search` clause, `"displayName:ann"`, with `"` and `\\` escaped inside the quotes."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{_property(prop)}:{escaped}"'


def search_any(props: tuple[str, ...] | list[str], text: str) -> str:
    return " OR ".join(search_clause(p, text) for p in props)


def is_guid(value: str) -> bool:
    return isinstance(value, str) and bool(_GUID.match(value))


def _property(prop: str) -> str:
    # Property names come from our code, never from users; refuse anything that is not a plain name.
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9/]*", prop):
        raise ValueError(f"not an OData property name: {prop!r}")
    return prop


def graph_time(when: datetime) -> str:
    """Graph's DateTimeOffset in UTC: `2026-12-31T11:00:00.0000000Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_graph_time(value: Any) -> datetime | None:
    """A Graph DateTimeOffset (up to 7 fractional digits, `Z` or an offset) as an aware datetime; None if not."""
    if not isinstance(value, str) or "T" not in value:
        return None
    text = value.strip()
    zone = "+00:00"
    if text[-1:] in ("Z", "z"):
        text = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        text, zone = text[:-6], text[-6:]
    base, _, fraction = text.partition(".")
    if fraction and not fraction.isdigit():
        return None
    try:
        parsed = datetime.fromisoformat(f"{base}.{(fraction or '0')[:6].ljust(6, '0')}{zone}")
    except ValueError:
        return None
    return parsed.astimezone(UTC)
