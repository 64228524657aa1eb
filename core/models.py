"""Database models (SQLAlchemy 2 typed). Schema changes go through migrations/ (Flask-Migrate)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates
from sqlalchemy.types import TypeDecorator
from werkzeug.security import check_password_hash, generate_password_hash

from core.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def render_migration_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Let Alembic autogenerate write our UTCDateTime as a plain timezone-aware DateTime."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


user_roles = Table(
    "user_roles",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
)


class Role(db.Model):
    __tablename__ = "roles"

    USER = "User"
    ADMINISTRATOR = "Administrator"
    MANAGE_DATASOURCES = "Manage datasources"
    ALL = (USER, ADMINISTRATOR, MANAGE_DATASOURCES)
    ADMIN_AREA = (ADMINISTRATOR, MANAGE_DATASOURCES)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")

    def __repr__(self) -> str:
        return f"<Role {self.name}>"


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "object_id", name="uq_users_external_identity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    password_hash: Mapped[str | None] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(default=True)
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    time_zone: Mapped[str | None] = mapped_column(String(64))  # IANA zone pages show times in; None: the deployment's
    roles: Mapped[list[Role]] = relationship(secondary=user_roles, lazy="selectin", order_by=Role.name)

    @validates("email")
    def _normalise_email(self, _key: str, value: str) -> str:
        """Emails are unique case-insensitively: keep them lower-cased."""
        return value.strip().lower()

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    @property
    def role_names(self) -> set[str]:
        return {role.name for role in self.roles}

    def has_any_role(self, *names: str) -> bool:
        return not self.role_names.isdisjoint(names)

    def set_password(self, password: str | None) -> None:
        self.password_hash = generate_password_hash(password) if password else None

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash or "", password)

    @property
    def label(self) -> str:
        return self.display_name or self.email

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(320), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(512), default="")
    outcome: Mapped[str] = mapped_column(String(32), default="success")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    # Office 365 operations: which datasource and which operation (filtered server-side on the Audit log page).
    datasource: Mapped[str | None] = mapped_column(String(100), index=True)
    operation: Mapped[str | None] = mapped_column(String(64), index=True)


def ensure_roles() -> None:
    """Create the built-in roles if they are missing (idempotent)."""
    existing = set(db.session.scalars(db.select(Role.name)))
    for name in Role.ALL:
        if name not in existing:
            db.session.add(Role(name=name))
    db.session.flush()


def role_by_name(name: str) -> Role:
    role = db.session.scalar(db.select(Role).filter_by(name=name))
    if role is None:
        ensure_roles()
        role = db.session.scalar(db.select(Role).filter_by(name=name))
    assert role is not None
    return role


class Datasource(db.Model):
    """A connector to an external directory. Office 365 is the one kind today; `kind` leaves room for others."""

    __tablename__ = "datasources"

    INCOMPLETE = "incomplete"
    READY = "ready"
    NEEDS_REAUTHORIZATION = "needs re-authorization"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default="office365")
    read_write: Mapped[bool] = mapped_column(default=False)
    sso_enabled: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(32), default=INCOMPLETE)
    version: Mapped[int] = mapped_column(default=1)  # bumped by each admin edit; a stale form is refused
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")
    # The grant, recorded at authorization.
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    tenant_name: Mapped[str | None] = mapped_column(String(256))
    authorized_by: Mapped[str | None] = mapped_column(String(320))
    authorized_by_oid: Mapped[str | None] = mapped_column(String(64))
    authorized_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    granted_scopes: Mapped[str] = mapped_column(String(1024), default="")
    token_cache: Mapped[str | None] = mapped_column(Text)  # MSAL SerializableTokenCache, Fernet-encrypted
    last_refresh_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Security: who may administer it and who may run its operations (blank lists = the defaults).
    admin_users: Mapped[list[str]] = mapped_column(JSON, default=list)
    admin_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    user_users: Mapped[list[str]] = mapped_column(JSON, default=list)
    user_roles_allowed: Mapped[list[str]] = mapped_column(JSON, default=list)
    admin_groups: Mapped[list[int]] = mapped_column(JSON, default=list)  # local Group ids
    user_groups_allowed: Mapped[list[int]] = mapped_column(JSON, default=list)

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.granted_scopes.split())

    def __repr__(self) -> str:
        return f"<Datasource {self.name}>"


class PendingFlowEntry(db.Model):
    """A flow between a redirect to an identity provider and its callback (an SSO sign-in, a datasource's
    authorization), single use: see core/pending_flows.py. The key is kept as a SHA-256, the payload encrypted."""

    __tablename__ = "pending_flows"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


group_members = Table(
    "group_members",
    db.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Group(db.Model):
    """A local group of users (data source security and SSO use them too).

    Optionally bound to an Office 365 group of a datasource: the user import adds its members, and with
    `override_members` makes the local group mirror it exactly.
    """

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str] = mapped_column(String(1024), default="")
    datasource_id: Mapped[int | None] = mapped_column(ForeignKey("datasources.id", ondelete="SET NULL"), index=True)
    source_group_id: Mapped[str | None] = mapped_column(String(64))
    source_group_name: Mapped[str | None] = mapped_column(String(256))
    override_members: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    members: Mapped[list[User]] = relationship(secondary=group_members, lazy="select", order_by=User.email)

    def __repr__(self) -> str:
        return f"<Group {self.name}>"
