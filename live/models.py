"""Live access: per datasource, whether Entra's changes are followed live (change notifications, else a light delta
poll), the state an administrator reads (last notification, lag, why polling is on), and the Graph subscriptions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models import UTCDateTime, utcnow


class LiveAccess(db.Model):
    """One datasource's live-access switch and state (a row appears when an administrator first turns it on).

    `sync_requested_at`: a delta round is wanted (a notification, the fallback poll) and not yet started; the
    first request in a burst sets it (and `sync_due_at`, when the queued round may start), the round clears both
    when it starts, so a burst costs one round. A notification moves a later due time (a queued poll) earlier.
    `lag_seconds`: for the last round, from the oldest change it picked up being reported to it being applied.
    """

    __tablename__ = "live_access"

    id: Mapped[int] = mapped_column(primary_key=True)
    datasource_id: Mapped[int] = mapped_column(ForeignKey("datasources.id", ondelete="CASCADE"), unique=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    notifications: Mapped[bool] = mapped_column(default=True)  # use change notifications when they can work
    poll_seconds: Mapped[int] = mapped_column(default=60)  # the fallback poll's interval
    fallback_reason: Mapped[str] = mapped_column(String(512), default="")  # why polling is on ("" = it is not)
    sync_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sync_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sync_reason: Mapped[str] = mapped_column(String(64), default="")
    last_round_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_round_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the last delta round that finished
    last_round_error: Mapped[str | None] = mapped_column(Text)
    last_reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # every signed-in user checked
    lag_seconds: Mapped[float | None] = mapped_column()
    last_notification_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notifications_received: Mapped[int] = mapped_column(default=0)
    notifications_refused: Mapped[int] = mapped_column(default=0)
    sessions_ended: Mapped[int] = mapped_column(default=0)  # by disable or revocation, since it was turned on
    sessions_refreshed: Mapped[int] = mapped_column(default=0)  # group changes pushed into live sessions
    notifications_replayed: Mapped[int] = mapped_column(default=0)  # repeats refused (live/notifications.py)
    missed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # Graph's last `missed` lifecycle event
    maintaining_until: Mapped[datetime | None] = mapped_column(UTCDateTime())  # live.subscriptions.maintain's lease
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")


class GraphSubscription(db.Model):
    """A Microsoft Graph change-notification subscription a datasource holds (`resource` "users" or "groups").

    `client_state` is encrypted (core.crypto); Graph echoes it in every notification and it is compared in
    constant time. `status`: active, reauthorize (Graph asked for reauthorizationRequired), removed, failed.
    """

    __tablename__ = "graph_subscriptions"

    ACTIVE = "active"
    REAUTHORIZE = "reauthorize"
    REMOVED = "removed"
    FAILED = "failed"

    id: Mapped[int] = mapped_column(primary_key=True)
    datasource_id: Mapped[int] = mapped_column(ForeignKey("datasources.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[str] = mapped_column(String(64), unique=True)
    resource: Mapped[str] = mapped_column(String(64))
    change_type: Mapped[str] = mapped_column(String(64), default="updated,deleted")
    client_state: Mapped[str] = mapped_column(Text)  # encrypted
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_notification_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    notification_url: Mapped[str] = mapped_column(String(1000), default="")  # where Graph posts (to move it)
    last_lifecycle_event: Mapped[str] = mapped_column(String(32), default="")
    last_lifecycle_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RefusedNotification(db.Model):
    """A bounded record of what the notification endpoint refused (forged, replayed, malformed, too large), for
    the administrator; `datasource_id` is empty when nothing ties the request to a data source."""

    __tablename__ = "live_refused_notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    datasource_id: Mapped[int | None] = mapped_column(ForeignKey("datasources.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(32))  # see live.notifications.REASONS
    detail: Mapped[str] = mapped_column(String(300), default="")
    subscription_id: Mapped[str] = mapped_column(String(64), default="")
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    count: Mapped[int] = mapped_column(default=1)  # items of one request refused for the same reason


class SeenNotification(db.Model):
    """Digests of accepted notifications, to refuse a replay (the database's copy; Redis keeps them when
    REDIS_URL is set). Rows past `expires_at` are deleted as new ones come."""

    __tablename__ = "live_seen_notifications"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
