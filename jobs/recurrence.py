"""When a scheduled task is due next. Pure functions: the scheduler and the admin pages share them.

Times of day are wall-clock times in the task's time zone (IANA, via zoneinfo), with its daylight-saving rules:
"daily at 09:00 Europe/London" runs at 09:00 London time in winter and in summer. A time the clocks skip
(spring forward) runs once, at the first instant after the gap; a time that happens twice (fall back) runs once,
at its first occurrence. "Every N minutes" counts real minutes. Results are UTC.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.timefmt import DEFAULT_ZONE, zone


def task_zone(task: Any) -> ZoneInfo:
    return zone(getattr(task, "time_zone", None) or DEFAULT_ZONE)


def wall_time(day: date, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    """The instant the clocks in `tz` show `day hour:minute`: the first one if it happens twice, the first instant
    after the gap if the clocks skip it."""
    naive = datetime(day.year, day.month, day.day, hour, minute)
    first = naive.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive:
        return first.astimezone(UTC)  # exists (fold=0 is the earlier of two when ambiguous)
    # In a gap: fold=1 reads it with the offset after the change (an instant before the gap), fold=0 with the
    # offset before it (an instant after the gap). The change is between them: find its first second.
    low, high = naive.replace(tzinfo=tz, fold=1).astimezone(UTC), first.astimezone(UTC)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) > naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _hourly(minute: int, after: datetime, tz: ZoneInfo) -> datetime:
    """The first whole minute after `after` whose local minute is `minute`: every real hour, and right across
    changes of offset, half-hour ones too (Lord Howe)."""
    due = after.replace(second=0, microsecond=0)
    for _ in range(3 * 60):
        due += timedelta(minutes=1)
        if due.astimezone(tz).minute == minute:
            return due
    return due  # unreachable with real offsets (whole quarter hours)


def _matches(task: Any, day: date) -> bool:
    kind = task.schedule
    if kind == "daily":
        return not task.weekdays_only or day.weekday() < 5
    if kind == "weekly":
        return day.weekday() == task.weekday
    if kind == "monthly":
        last = calendar.monthrange(day.year, day.month)[1]
        return day.day == min(max(1, task.day_of_month), last)
    return False


def next_run(task: Any, after: datetime) -> datetime | None:
    """The first due time strictly after `after` (UTC), or None (webhook, a "once" already past)."""
    after = after.astimezone(UTC)
    kind = task.schedule
    if kind == "webhook":
        return None
    if kind == "once":
        return task.run_at if task.run_at is not None and task.run_at > after else None
    if kind == "minutes":
        step = max(1, int(task.interval_minutes or 1))
        minutes = int(after.timestamp() // 60)
        return datetime.fromtimestamp((minutes // step + 1) * step * 60, UTC)
    tz = task_zone(task)
    if kind == "hourly":
        return _hourly(task.at_minute % 60, after, tz)
    hour, minute = divmod(int(task.at_minute) % 1440, 60)
    first_day = after.astimezone(tz).date() - timedelta(days=1)
    for offset in range(0, 800):
        day = first_day + timedelta(days=offset)
        if _matches(task, day):
            due = wall_time(day, hour, minute, tz)
            if due > after:
                return due
    return None


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def describe(task: Any) -> str:
    """The schedule in words, for the list (times of day in the task's zone, named)."""
    zone_name = task_zone(task).key
    hhmm = f"{task.at_minute // 60 % 24:02d}:{task.at_minute % 60:02d} {zone_name}"
    kind = task.schedule
    if kind == "minutes":
        return f"Every {task.interval_minutes} minutes"
    if kind == "hourly":
        return f"Hourly at :{task.at_minute % 60:02d}" + ("" if zone_name == DEFAULT_ZONE else f" ({zone_name})")
    if kind == "daily":
        return f"Daily at {hhmm}" + (", weekdays only" if task.weekdays_only else "")
    if kind == "weekly":
        return f"Weekly on {WEEKDAYS[task.weekday % 7]} at {hhmm}"
    if kind == "monthly":
        return f"Monthly on day {task.day_of_month} at {hhmm}"
    if kind == "once" and task.run_at:
        return f"Once at {task.run_at.astimezone(task_zone(task)):%Y-%m-%d %H:%M} {zone_name}"
    if kind == "once":
        return "Once"
    return "On demand (webhook)"
