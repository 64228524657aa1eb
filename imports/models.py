"""The user import's tables: each datasource's import settings and sync state (delta links), the mirror of the
directory's users, the staged delta pages and the group membership mirror."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models import Group, UTCDateTime, utcnow
from policies.service import required_group_ids


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
        """Office 365 groups whose members matter: the chosen source groups, the bound local groups, and the groups
        the access rules name (their membership mirror is what /auth/verify decides by, under live access)."""
        ids = {g["id"] for g in self.source_groups} if self.scope == self.SCOPE_GROUPS else set()
        ids |= set(db.session.scalars(db.select(Group.source_group_id).where(
            Group.datasource_id == self.datasource_id, Group.source_group_id.is_not(None))))
        ids |= {group_id.lower() for group_id in required_group_ids()}
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
    sessions_valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime())  # signInSessionsValidFromDateTime
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
