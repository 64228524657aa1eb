"""Single sign-on tables: settings, providers, server-side sessions, diagnostics, keys (in-flight sign-ins live in
core.pending_flows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models import UTCDateTime, utcnow


class SsoSettings(db.Model):
    """One row (id 1): the Administration > Single Sign-On page."""

    __tablename__ = "sso_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    auto_redirect: Mapped[bool] = mapped_column(default=False)
    create_users: Mapped[bool] = mapped_column(default=False)
    bypass_role: Mapped[str] = mapped_column(String(64), default="Administrator")
    idle_timeout_minutes: Mapped[int] = mapped_column(default=60)
    absolute_timeout_hours: Mapped[int] = mapped_column(default=12)
    clock_leeway_seconds: Mapped[int] = mapped_column(default=60)
    group_cache_minutes: Mapped[int] = mapped_column(default=15)
    # Named forward-auth policies: {"name": {"groups": [...], "emails": [...], "domains": [...]}}
    policies: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")


class SsoProvider(db.Model):
    """An identity provider: an Office 365 datasource (`kind` office365) or a generic OpenID Connect issuer."""

    __tablename__ = "sso_providers"

    OFFICE365 = "office365"
    OIDC = "oidc"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default=OIDC)
    enabled: Mapped[bool] = mapped_column(default=True)
    datasource_id: Mapped[int | None] = mapped_column(ForeignKey("datasources.id", ondelete="CASCADE"))
    issuer: Mapped[str | None] = mapped_column(String(512))
    client_id: Mapped[str | None] = mapped_column(String(255))
    client_secret: Mapped[str | None] = mapped_column(Text)  # Fernet-encrypted
    scopes: Mapped[str] = mapped_column(String(512), default="openid profile email")
    user_claim: Mapped[str] = mapped_column(String(64), default="preferred_username")
    response_mode: Mapped[str] = mapped_column(String(16), default="query")
    domain_hint: Mapped[str | None] = mapped_column(String(255))
    # Generic providers: use `email` even without `email_verified: true` (for providers that omit the claim).
    trust_unverified_email: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class SsoIdentity(db.Model):
    """A generic provider's (issuer, sub) linked to a user (Office 365 users: users.tenant_id + object_id)."""

    __tablename__ = "sso_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_sso_identities_issuer_subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(512))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UserSession(db.Model):
    """A server-side session (the database store). The cookie holds a random id; only its SHA-256 is kept."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_idp_sid", "idp_sid"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    data: Mapped[str] = mapped_column(Text, default="{}")  # JSON of the Flask session
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # absolute timeout
    idle_seconds: Mapped[int] = mapped_column(default=3600)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    provider: Mapped[str | None] = mapped_column(String(64))
    idp_sid: Mapped[str | None] = mapped_column(String(128))
    idp_sub: Mapped[str | None] = mapped_column(String(255))


class GroupCache(db.Model):
    """Group ids read from Graph on overage, per (tenant, user), with the time they were read (TTL)."""

    __tablename__ = "sso_group_cache"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SignInAttempt(db.Model):
    """One SSO sign-in attempt for the diagnostics page. Never holds a token or secret."""

    __tablename__ = "sso_sign_in_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    reference: Mapped[str] = mapped_column(String(32), index=True)
    provider: Mapped[str] = mapped_column(String(64), default="")
    username: Mapped[str] = mapped_column(String(320), default="", index=True)
    outcome: Mapped[str] = mapped_column(String(16), default="failure")
    reason: Mapped[str] = mapped_column(String(1024), default="")
    checks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    groups_source: Mapped[str] = mapped_column(String(64), default="")
    redirect_uri: Mapped[str] = mapped_column(String(2048), default="")
    forwarded: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SigningKey(db.Model):
    """The gateway's own key for forward-auth assertions; the private key is Fernet-encrypted. It signs from
    `activates_at` (NULL: from `created_at`), and is published in the JWKS from creation until pruned."""

    __tablename__ = "sso_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    activates_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SignInThrottle(db.Model):
    """Failed password sign-ins per account (SHA-256 of the e-mail as typed, existing or not): see sso/throttle.py.
    Used without REDIS_URL, so every process shares the count."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AccessRequest(db.Model):
    """A person denied by an access rule asks to join the group that would let them in (Request access).

    Administrators and the Office 365 group's owners (read from Graph) approve or refuse it; approval runs Add
    User to Group through the datasource. `approver_ids`: the owners' object ids when the request was made (who
    sees it on their Access requests page; ownership is read again from Graph when an owner approves).
    `seen_at`: when the requester was shown the decision (shown until then on their home and denied pages)."""

    __tablename__ = "access_requests"
    __table_args__ = (
        # at most one pending request per person and group
        Index("uq_access_requests_pending", "requester_id", "group_id", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
        Index("ix_access_requests_status_created", "status", "created_at"),
    )

    PENDING, APPROVED, REFUSED = "pending", "approved", "refused"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    requester_label: Mapped[str] = mapped_column(String(320), default="")
    datasource_id: Mapped[int | None] = mapped_column(ForeignKey("datasources.id", ondelete="SET NULL"))
    group_id: Mapped[str] = mapped_column(String(64))
    group_name: Mapped[str] = mapped_column(String(256), default="")
    host: Mapped[str] = mapped_column(String(255), default="")
    path: Mapped[str] = mapped_column(String(2048), default="")
    rule_name: Mapped[str] = mapped_column(String(256), default="")
    reason: Mapped[str] = mapped_column(String(512), default="")
    approver_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    decided_by: Mapped[str] = mapped_column(String(320), default="")
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message: Mapped[str] = mapped_column(String(1024), default="")  # the refusal's note, or the last Graph failure
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
