"""A bulk job and its objects: what the preview planned, then each object's outcome as the job goes.

An item with no outcome yet is pending: a job that stopped (worker killed, restarted) resumes with its pending
items, so nothing is sent twice except at most the chunk that was in flight (every change is idempotent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models import UTCDateTime, utcnow


class BulkJob(db.Model):
    __tablename__ = "bulk_jobs"

    PREVIEWED, QUEUED, RUNNING = "previewed", "queued", "running"
    DONE, PARTIAL, FAILED, CANCELLED = "done", "partial", "failed", "cancelled"
    ACTIVE = (QUEUED, RUNNING)
    ACTION_LABELS = {"add": "Add to group", "remove": "Remove from group", "assign-licence": "Assign licence",
                     "remove-licence": "Remove licence"}

    id: Mapped[int] = mapped_column(primary_key=True)
    datasource_id: Mapped[int] = mapped_column(ForeignKey("datasources.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(36))
    target_name: Mapped[str] = mapped_column(String(256), default="")
    selection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"ids": n} or {"source", "q", ...}
    disabled_plans: Mapped[list[str]] = mapped_column(JSON, default=list)
    unchanged: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)  # preview: reason -> count
    actor: Mapped[str] = mapped_column(String(320), default="")
    status: Mapped[str] = mapped_column(String(16), default=PREVIEWED)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("task_runs.id", ondelete="SET NULL"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_jobs.id", ondelete="SET NULL"))
    total: Mapped[int] = mapped_column(default=0)  # objects to change
    preview_requests: Mapped[int] = mapped_column(default=0)
    graph_requests: Mapped[int] = mapped_column(default=0)
    resumes: Mapped[int] = mapped_column(default=0)
    result: Mapped[str] = mapped_column(String(200), default="")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def action_label(self) -> str:
        return self.ACTION_LABELS.get(self.action, self.action)

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def finished(self) -> bool:
        return self.status in (self.DONE, self.PARTIAL, self.FAILED, self.CANCELLED)


class BulkItem(db.Model):
    __tablename__ = "bulk_items"
    __table_args__ = (Index("ix_bulk_items_job_position", "job_id", "position", unique=True),
                      Index("ix_bulk_items_job_outcome", "job_id", "outcome"))

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("bulk_jobs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column()
    object_id: Mapped[str] = mapped_column(String(36))
    label: Mapped[str] = mapped_column(String(400), default="")
    outcome: Mapped[str | None] = mapped_column(String(32))  # None: pending
    message: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
