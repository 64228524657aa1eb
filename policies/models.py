"""The access policy's versions (append-only: the current one has the highest number) and recorded decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models import UTCDateTime, utcnow


class PolicyVersion(db.Model):
    """One saved access policy document: every save is a new row, never updated."""

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    note: Mapped[str] = mapped_column(String(512), default="")


class AccessDecision(db.Model):
    """A /auth/verify decision that was not "allowed", with the rule and the failing criterion in words."""

    __tablename__ = "access_decisions"
    __table_args__ = (
        Index("ix_access_decisions_at", "at"),
        Index("ix_access_decisions_outcome_at", "outcome", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    user_label: Mapped[str] = mapped_column(String(320), default="")
    session_hash: Mapped[str] = mapped_column(String(16), default="")
    host: Mapped[str] = mapped_column(String(255), default="")
    path: Mapped[str] = mapped_column(String(2048), default="")
    method: Mapped[str] = mapped_column(String(16), default="")
    rule_id: Mapped[str] = mapped_column(String(64), default="")
    rule_name: Mapped[str] = mapped_column(String(256), default="")
    outcome: Mapped[str] = mapped_column(String(16))
    criterion: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(String(512), default="")
    granting_groups: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    policy_version: Mapped[int] = mapped_column(default=0)
