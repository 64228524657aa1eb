"""Scheduled tasks, their runs, and the per-datasource user import with its sync state (delta links, mirror)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models import UTCDateTime, utcnow


class UserImport(db.Model):
    """What to import from one datasource, and where its incremental sync stands.

    `phase` walks idle -> groups -> users -> merge -> apply -> idle; `*_next` is the nextLink of the page to read
    next (committed with the page before it, whose users wait in StagedPage), `*_delta` the deltaLink of the last
    complete round.
    """

    __tablename__ = "user_imports"

    SCOPE_ALL = "all"
    SCOPE_GROUPS = "groups"
    MISSING_CHOICES = ("nothing", "disable", "remove")
    PROFILE_FIELDS = ("display_name", "email", "active")

    id: Mapped[int] = mapped_column(primary_key=True)
    datasource_id: Mapped[int] = mapped_column(ForeignKey("datasources.id", ondelete="CASCADE"), unique=True)
    scope: Mapped[str] = mapped_column(String(16), default=SCOPE_ALL)
    source_groups: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{"id", "name"}]
    default_role: Mapped[str] = mapped_column(String(64), default="User")
    profile_fields: Mapped[list[str]] = mapped_column(JSON, default=lambda: list(UserImport.PROFILE_FIELDS))
    on_missing: Mapped[str] = mapped_column(String(16), default="nothing")
    removal_guard_percent: Mapped[int] = mapped_column(default=10)
    removals_confirmed: Mapped[bool] = mapped_column(default=False)  # one-shot: consumed by the next run
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")
    # Sync state.
    phase: Mapped[str] = mapped_column(String(16), default="idle")
    round: Mapped[int] = mapped_column(default=0)
    full_round: Mapped[bool] = mapped_column(default=True)
    groups_key: Mapped[str] = mapped_column(String(4000), default="")  # the group ids the groups delta follows
    groups_next: Mapped[str | None] = mapped_column(Text)
    groups_delta: Mapped[str | None] = mapped_column(Text)
    users_next: Mapped[str | None] = mapped_column(Text)
    users_delta: Mapped[str | None] = mapped_column(Text)
    last_full_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    running_run_id: Mapped[int | None] = mapped_column()

    @property
    def staged_pages(self) -> int:
        """Delta pages read and committed but not yet merged into local users (a run stopped part-way)."""
        return db.session.scalar(db.select(db.func.count()).select_from(StagedPage).where(
            StagedPage.import_id == self.id)) or 0

    @property
    def relevant_group_ids(self) -> list[str]:
        """Office 365 groups whose members matter: the chosen source groups and the bound local groups."""
        from core.models import Group

        ids = {g["id"] for g in self.source_groups} if self.scope == self.SCOPE_GROUPS else set()
        ids |= set(db.session.scalars(db.select(Group.source_group_id).where(
            Group.datasource_id == self.datasource_id, Group.source_group_id.is_not(None))))
        return sorted(ids)


class SourceUser(db.Model):
    """The import's copy of a directory user as of the last page read (`dirty`: local side not yet in step)."""

    __tablename__ = "import_source_users"
    __table_args__ = (UniqueConstraint("import_id", "object_id", name="uq_import_source_users_object"),
                      Index("ix_import_source_users_dirty", "import_id", "dirty"))

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("user_imports.id", ondelete="CASCADE"))
    object_id: Mapped[str] = mapped_column(String(64))
    upn: Mapped[str] = mapped_column(String(320), default="")
    mail: Mapped[str | None] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(256), default="")
    account_enabled: Mapped[bool] = mapped_column(default=True)
    removed: Mapped[bool] = mapped_column(default=False)
    dirty: Mapped[bool] = mapped_column(default=False)
    seen_round: Mapped[int] = mapped_column(default=0)


class StagedPage(db.Model):
    """A delta page of users as Graph sent it (JSON), until the merge applies its users.

    Committing a page with its next link then writes one row, however large the tenant; the merge writes local
    users in large transactions (committing local users page by page rewrote most of the users table's two
    random-key indexes at every page).
    """

    __tablename__ = "import_staged_pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("user_imports.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(Text)


class SourceMembership(db.Model):
    """Members of the Office 365 groups that matter to the import (`members@delta` applied)."""

    __tablename__ = "import_source_members"

    import_id: Mapped[int] = mapped_column(ForeignKey("user_imports.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)


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
