"""Scheduled tasks and their runs (what each kind of job does is registered in jobs/registry.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models import UTCDateTime, utcnow


class ScheduledTask(db.Model):
    __tablename__ = "scheduled_tasks"

    KIND_IMPORT = "user_import"
    KIND_REFRESH = "token_refresh"
    KINDS = {KIND_IMPORT: "User import", KIND_REFRESH: "Datasource token keep-alive"}
    SCHEDULES = {"minutes": "Every N minutes", "hourly": "Hourly", "daily": "Daily", "weekly": "Weekly",
                 "monthly": "Monthly", "once": "Once", "webhook": "On demand (webhook)"}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default=KIND_IMPORT)
    datasource_id: Mapped[int | None] = mapped_column(ForeignKey("datasources.id", ondelete="CASCADE"), index=True)
    dry_run: Mapped[bool] = mapped_column(default=False)
    schedule: Mapped[str] = mapped_column(String(16), default="daily")
    interval_minutes: Mapped[int] = mapped_column(default=60)
    at_minute: Mapped[int] = mapped_column(default=0)  # minute of the day (daily/weekly/monthly) or hour (hourly)
    weekdays_only: Mapped[bool] = mapped_column(default=False)
    weekday: Mapped[int] = mapped_column(default=0)  # 0 = Monday
    day_of_month: Mapped[int] = mapped_column(default=1)
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # "once"
    # IANA zone the times of day are read in (with its daylight-saving rules); new tasks get the deployment's.
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    webhook_secret: Mapped[str | None] = mapped_column(Text)  # Fernet-encrypted, shown to administrators
    webhook_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # sha256, for the look-up
    enabled: Mapped[bool] = mapped_column(default=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    owner: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TaskRun(db.Model):
    """One run. A scheduled run is claimed by inserting (task_id, due_at): the unique constraint makes it once."""

    __tablename__ = "task_runs"
    __table_args__ = (UniqueConstraint("task_id", "due_at", name="uq_task_runs_due"),
                      Index("ix_task_runs_status", "status"))

    QUEUED, RUNNING, SUCCEEDED, FAILED, CONFIRM = "queued", "running", "succeeded", "failed", "needs confirmation"
    STEPS = {"groups": "reading the chosen groups", "users": "reading users", "merge": "applying the users read",
             "apply": "applying removals and group members", "resync": "starting a full sync"}
    COUNTS = ("created", "updated", "disabled", "removed", "unchanged", "errors")

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("scheduled_tasks.id", ondelete="CASCADE"), index=True)
    datasource_id: Mapped[int | None] = mapped_column(ForeignKey("datasources.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(16), default="manual")  # schedule | manual | webhook | cli
    actor: Mapped[str] = mapped_column(String(320), default="system")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dry_run: Mapped[bool] = mapped_column(default=False)
    confirm_removals: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(32), default=QUEUED)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    worker: Mapped[str | None] = mapped_column(String(128))  # host:pid
    phase: Mapped[str] = mapped_column(String(16), default="")
    pages: Mapped[int] = mapped_column(default=0)
    processed: Mapped[int] = mapped_column(default=0)
    total_estimate: Mapped[int | None] = mapped_column()
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    disabled: Mapped[int] = mapped_column(default=0)
    removed: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    graph_requests: Mapped[int] = mapped_column(default=0)
    resyncs: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return ((self.finished_at or utcnow()) - self.started_at).total_seconds()

    @property
    def step(self) -> str:
        """What a running import is doing, in words (empty once it ended)."""
        return "" if self.done else self.STEPS.get(self.phase, "")

    @property
    def done(self) -> bool:
        return self.status not in (self.QUEUED, self.RUNNING)
