"""When a scheduled task is due next (UTC). Pure functions: the scheduler and the admin pages share them."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Any


def next_run(task: Any, after: datetime) -> datetime | None:
    """The first due time strictly after `after`, or None (webhook, a "once" already past)."""
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
    if kind == "hourly":
        due = after.replace(minute=task.at_minute % 60, second=0, microsecond=0)
        return due if due > after else due + timedelta(hours=1)
    hour, minute = divmod(int(task.at_minute) % 1440, 60)
    day = after.date()
    for offset in range(0, 800):
        date = day + timedelta(days=offset)
        due = datetime(date.year, date.month, date.day, hour, minute, tzinfo=UTC)
        if due <= after:
            continue
        if kind == "daily" and (not task.weekdays_only or date.weekday() < 5):
            return due
        if kind == "weekly" and date.weekday() == task.weekday:
            return due
        if kind == "monthly":
            last = calendar.monthrange(date.year, date.month)[1]
            if date.day == min(max(1, task.day_of_month), last):
                return due
    return None


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def describe(task: Any) -> str:
    """The schedule in words, for the list."""
    hhmm = f"{task.at_minute // 60 % 24:02d}:{task.at_minute % 60:02d} UTC"
    kind = task.schedule
    if kind == "minutes":
        return f"Every {task.interval_minutes} minutes"
    if kind == "hourly":
        return f"Hourly at :{task.at_minute % 60:02d}"
    if kind == "daily":
        return f"Daily at {hhmm}" + (", weekdays only" if task.weekdays_only else "")
    if kind == "weekly":
        return f"Weekly on {WEEKDAYS[task.weekday % 7]} at {hhmm}"
    if kind == "monthly":
        return f"Monthly on day {task.day_of_month} at {hhmm}"
    if kind == "once":
        return f"Once at {task.run_at:%Y-%m-%d %H:%M} UTC" if task.run_at else "Once"
    return "On demand (webhook)"
