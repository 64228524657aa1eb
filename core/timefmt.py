"""Time zones: the deployment default, the viewer's zone, and the one Jinja filter every page shows times with.

Times are stored and exchanged (database, CLI, JSON API, CSV) in UTC. Pages show them in the viewer's zone (their
preference, else the deployment's `TIME_ZONE`) with the zone named, inside `<time datetime="...Z">` carrying the
UTC instant.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, available_timezones

from flask import Flask, current_app, has_request_context
from markupsafe import Markup, escape

log = logging.getLogger(__name__)
DEFAULT_ZONE = "UTC"
NBSP = "\u00a0"
# The canonical IANA regions offered in selects (legacy links such as US/Pacific still validate).
REGIONS = frozenset({"Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe", "Indian",
                     "Pacific"})


@functools.cache
def zone_names() -> tuple[str, ...]:
    """Every IANA zone this machine knows (the `tzdata` package guarantees them), UTC first."""
    names = sorted(name for name in available_timezones() if name.split("/")[0] in REGIONS)
    return (DEFAULT_ZONE, *names)


def zone_choices(*keep: str | None) -> list[tuple[str, str]]:
    """Choices for a zone select; `keep` adds a valid legacy name in use (US/Pacific) so it stays selected."""
    extra = [name for name in keep if name and is_zone(name) and name not in zone_names()]
    return [(name, name.replace("_", " ")) for name in (*zone_names(), *extra)]


def is_zone(name: str | None) -> bool:
    return bool(name) and name in _known()


@functools.cache
def _known() -> frozenset[str]:
    return frozenset(available_timezones()) | {DEFAULT_ZONE}


def zone(name: str | None) -> ZoneInfo:
    """The named zone; UTC (and a warning) for a name this machine does not know, e.g. one tzdata retired."""
    if name and is_zone(name):
        return ZoneInfo(name)
    if name and name != DEFAULT_ZONE:
        log.warning("Unknown time zone %r: using UTC", name)
    return ZoneInfo(DEFAULT_ZONE)


def deployment_zone_name() -> str:
    return str(current_app.config.get("TIME_ZONE") or DEFAULT_ZONE)


def viewer_zone_name() -> str:
    """The signed-in user's preference, else the deployment default."""
    if has_request_context():
        from flask_login import current_user

        preference = getattr(current_user, "time_zone", None) if current_user.is_authenticated else None
        if preference and is_zone(preference):
            return str(preference)
    return deployment_zone_name()


def _abbreviation(local: datetime) -> str:
    """CET, EDT, UTC; zones without a letter abbreviation ("+0530", "-03") read as UTC+05:30, UTC-03."""
    name = local.tzname() or ""
    if name[:1] in "+-":
        offset = local.utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset is not None else 0
        sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
        return f"UTC{sign}{minutes // 60:02d}" + (f":{minutes % 60:02d}" if minutes % 60 else "")
    return name


def as_utc(value: datetime | float | int) -> datetime:
    """Datetimes (naive meaning UTC) and epoch seconds as aware UTC datetimes."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def format_local(value: datetime | float | int, style: str = "minutes", zone_name: str | None = None) -> str:
    """"4 Dec 2026, 09:00 CET" in the viewer's zone (style: "minutes", "seconds" or "date")."""
    local = as_utc(value).astimezone(zone(zone_name or viewer_zone_name()))
    day = f"{local.day} {local:%b %Y}"
    if style == "date":
        return day
    clock = f"{local:%H:%M:%S}" if style == "seconds" else f"{local:%H:%M}"
    return f"{day}, {clock} {_abbreviation(local)}"


def iso_utc(value: datetime | float | int) -> str:
    """ISO 8601 in UTC with a Z, as `<time datetime>`, the CLI and the JSON API carry it."""
    return as_utc(value).isoformat(timespec="seconds").replace("+00:00", "Z")


def localtime_filter(value: datetime | float | int | None, style: str = "minutes", default: str = "") -> Markup:
    """`{{ when|localtime }}`: a `<time>` element, UTC in its datetime attribute, the viewer's zone in the text."""
    if value is None or value == "":
        return escape(default)
    zone_name = viewer_zone_name()
    day, comma, clock = format_local(value, style, zone_name).partition(", ")
    text = day.replace(" ", NBSP) + comma + clock.replace(" ", NBSP)  # wraps, if it must, only after the comma
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso_utc(value), zone_name, text)


def init_app(app: Flask) -> None:
    app.add_template_filter(localtime_filter, "localtime")
    app.add_template_global(viewer_zone_name)
    app.add_template_global(deployment_zone_name)
