"""A datasource's Graph change-notification subscriptions kept alive (CONTRACT B), and why polling is on.

`maintain(datasource_id)` (the live tick calls it at least once a minute for every datasource with live access
on; the admin page after turning it on) makes the state match the settings: with live access and notifications
on and a public URL Graph can reach, one `users` and one `groups` subscription exist, each renewed once less than a
third of its lifetime is left, answered when Graph asked for reauthorization, created again when Graph removed it
or it expired, and moved when PUBLIC_BASE_URL changed; otherwise there are none. It writes
`LiveAccess.fallback_reason` (CONTRACT A: polling is on while it is not empty) in plain words, and clears it when
notifications are healthy. A lease on the `LiveAccess` row keeps two processes from maintaining one datasource at
once (creating two subscriptions).

`remove_all(datasource_id)` deletes the subscriptions at Graph (best effort) and their rows, when a datasource is
deleted or live access turned off.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import delete, or_, select, update

from core import audit
from core.crypto import secret_box
from core.extensions import db
from core.models import Datasource, utcnow
from datasources.grant import graph_client
from datasources.tenant_change import TenantChangeEffect
from live.models import GraphSubscription, LiveAccess
from live.sync import request_sync
from office365 import subscriptions as graph_subscriptions
from office365.errors import NotFound, Office365Error, ReauthorizationRequired
from office365.graph import GraphClient, RetryPolicy, Timeouts

log = logging.getLogger(__name__)

NOTIFICATION_PATH = "/graph/notifications"
LIFECYCLE_PATH = "/graph/lifecycle"
LIFETIME = graph_subscriptions.MAX_LIFETIME - timedelta(hours=1)  # asked for: Graph's maximum less a margin
RENEW_WHEN_LEFT = LIFETIME / 3
LEASE = timedelta(minutes=2)
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def public_url_problem() -> str:
    """Why Graph cannot post to this gateway ("" when it can): PUBLIC_BASE_URL must be https (http only on the
    loopback, for the tenant emulator)."""
    base = current_app.config.get("PUBLIC_BASE_URL") or ""
    if not base:
        return "PUBLIC_BASE_URL is not set: Microsoft Graph cannot reach the gateway."
    parts = urlsplit(base)
    if parts.scheme == "https" or (parts.scheme == "http" and (parts.hostname or "") in LOOPBACK):
        return ""
    return (f"PUBLIC_BASE_URL ({base}) is not an https URL: Microsoft Graph only posts change notifications to "
            "https addresses.")


def endpoint_urls() -> tuple[str, str]:
    """(notificationUrl, lifecycleNotificationUrl) on PUBLIC_BASE_URL."""
    base = str(current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    return base + NOTIFICATION_PATH, base + LIFECYCLE_PATH


def subscriptions_of(datasource_id: int) -> list[GraphSubscription]:
    return list(db.session.scalars(select(GraphSubscription).where(GraphSubscription.datasource_id == datasource_id)
                                   .order_by(GraphSubscription.resource, GraphSubscription.id)))


def _client(datasource: Datasource) -> GraphClient:
    """The datasource's Graph client with room for the handshake: Graph answers a create only after our endpoint
    answered its validation request (up to 10 s), so reads may take that long."""
    client = graph_client(datasource)
    client.timeouts = Timeouts(connect=5.0, read=20.0)
    client.retry = RetryPolicy(max_attempts=3, backoff_base=0.5, backoff_cap=5.0, retry_after_cap=10.0, deadline=40.0)
    return client


def _marked(datasource_id: int) -> bool:
    """A lifecycle event marked a subscription (reauthorize, removed) that a pass has not answered yet."""
    db.session.expire_all()
    return bool(db.session.scalar(select(GraphSubscription.id).where(
        GraphSubscription.datasource_id == datasource_id,
        GraphSubscription.status.in_((GraphSubscription.REAUTHORIZE, GraphSubscription.REMOVED))).limit(1)))


def _take_lease(datasource_id: int) -> bool:
    now = utcnow()
    taken = db.session.execute(
        update(LiveAccess).where(LiveAccess.datasource_id == datasource_id,
                                 or_(LiveAccess.maintaining_until.is_(None), LiveAccess.maintaining_until < now))
        .values(maintaining_until=now + LEASE)).rowcount
    db.session.commit()
    return bool(taken)


def _release_lease(datasource_id: int) -> None:
    db.session.rollback()  # whatever failed half-way is not kept; what succeeded was committed step by step
    db.session.execute(update(LiveAccess).where(LiveAccess.datasource_id == datasource_id)
                       .values(maintaining_until=None))
    db.session.commit()


def maintain(datasource_id: int, *, wait: float = 0.0) -> None:
    """Make the datasource's subscriptions match its live-access settings and keep them alive; set or clear
    `fallback_reason`. Never raises for Graph's errors (they become the reason, in words). Commits.

    When another process holds the lease, waits up to `wait` seconds for it (a lifecycle event's work must not be
    dropped), else returns: the holder, or the next tick, does the work. The holder goes round again while a
    lifecycle event marked a subscription meanwhile."""
    live = db.session.scalar(select(LiveAccess).where(LiveAccess.datasource_id == datasource_id))
    if live is None or not live.enabled or not live.notifications:
        if subscriptions_of(datasource_id):
            remove_all(datasource_id)
        if live is not None and live.fallback_reason:
            live.fallback_reason = ""
            db.session.commit()
        return
    deadline = time.monotonic() + wait
    while not _take_lease(datasource_id):
        if time.monotonic() >= deadline:
            return  # another process is at it
        time.sleep(0.2)
    try:
        for _ in range(3):
            reasons = _maintain(datasource_id)
            if not _marked(datasource_id):
                break
        live = db.session.scalar(select(LiveAccess).where(LiveAccess.datasource_id == datasource_id))
        if live is not None:
            reason = " ".join(reasons)[:512]
            was = live.fallback_reason
            if reason != was:
                log.info("live access of datasource %s: %s", datasource_id,
                         reason or "change notifications are healthy; fallback polling off")
            live.fallback_reason = reason
            db.session.commit()
            if reason and not was:
                request_sync(datasource_id, "poll")  # polling starts now, not after a queued reconciling round
    finally:
        _release_lease(datasource_id)


def maintain_all() -> None:
    """Scheduler tick: `maintain` every datasource with live access on, or with subscriptions left to delete."""
    ids = set(db.session.scalars(select(LiveAccess.datasource_id).where(LiveAccess.enabled.is_(True))))
    ids |= set(db.session.scalars(select(GraphSubscription.datasource_id)))
    for datasource_id in sorted(ids):
        try:
            maintain(datasource_id)
        except Exception:  # noqa: BLE001 - one datasource's failure must not stop the others; the next tick retries
            db.session.rollback()
            log.exception("maintaining the Graph subscriptions of datasource %s failed", datasource_id)


def _maintain(datasource_id: int) -> list[str]:
    """The work of `maintain`; returns the reasons polling must stay on (none when notifications are healthy)."""
    datasource = db.session.get(Datasource, datasource_id)
    if datasource is None:
        return []
    rows = subscriptions_of(datasource_id)
    problem = public_url_problem()
    if problem:
        if rows:
            remove_all(datasource_id)
        return [problem]
    if datasource.status != Datasource.READY or not datasource.tenant_id:
        return [f"The data source is {datasource.status}: Graph subscriptions need a working authorization."]
    client = _client(datasource)
    notify_url, lifecycle_url = endpoint_urls()
    reasons: list[str] = []
    resubscribed = False
    for resource in graph_subscriptions.RESOURCES:
        current = [row for row in rows if row.resource == resource]
        row = current[-1] if current else None
        for extra in current[:-1]:  # never more than one per resource (a crash between create and clean-up)
            _delete_at_graph(client, extra)
            db.session.delete(extra)
        try:
            changed, note = _keep(client, datasource, resource, row, notify_url, lifecycle_url)
        except ReauthorizationRequired as exc:
            reasons.append(f"The {resource} subscription cannot be kept: the data source needs re-authorization "
                           f"({exc.message}).")
            continue
        except Office365Error as exc:
            reasons.append(_refusal_reason(resource, row, exc))
            if row is not None and row in db.session:
                row.last_error = str(exc)[:2000]
            db.session.commit()
            continue
        resubscribed = resubscribed or changed
        if note:
            reasons.append(note)
    missed = _missed_reason(datasource_id)
    if missed:
        reasons.append(missed)
    db.session.commit()
    if resubscribed:
        request_sync(datasource_id, "subscribed")  # changes made while no subscription listened are read now
    return reasons


def _refusal_reason(resource: str, row: GraphSubscription | None, exc: Office365Error) -> str:
    if row is not None and row.status == GraphSubscription.ACTIVE and row.expires_at > utcnow():
        return (f"Renewing the {resource} subscription failed ({exc}); it expires on "
                f"{row.expires_at:%Y-%m-%d %H:%M} UTC.")
    return f"Graph refused the {resource} subscription: {exc}"


def _missed_reason(datasource_id: int) -> str:
    live = db.session.scalar(select(LiveAccess).where(LiveAccess.datasource_id == datasource_id))
    if live is None or live.missed_at is None:
        return ""
    if live.last_round_at is not None and live.last_round_at >= live.missed_at:
        return ""  # a delta round finished since: it read what the notifications missed
    return (f"Microsoft reported missed notifications at {live.missed_at:%Y-%m-%d %H:%M} UTC: a delta round "
            "catches up.")


def _keep(client: GraphClient, datasource: Datasource, resource: str, row: GraphSubscription | None,
          notify_url: str, lifecycle_url: str) -> tuple[bool, str]:
    """One resource's subscription brought to health. Returns (created: a gap may hold lost changes, a note)."""
    now = utcnow()
    if row is None:
        _create(client, datasource, resource, notify_url, lifecycle_url)
        return True, ""
    if row.status == GraphSubscription.REMOVED or row.expires_at <= now:
        why = ("Microsoft removed it" if row.status == GraphSubscription.REMOVED
               else f"it expired on {row.expires_at:%Y-%m-%d %H:%M} UTC")
        log.warning("datasource %s: the %s subscription %s is gone (%s); creating it again",
                    datasource.id, resource, row.subscription_id, why)
        _forget(datasource, row, why)
        _create(client, datasource, resource, notify_url, lifecycle_url)
        return True, ""
    if row.status == GraphSubscription.FAILED:
        _delete_at_graph(client, row)
        _forget(datasource, row, row.last_error or "it failed")
        _create(client, datasource, resource, notify_url, lifecycle_url)
        return True, ""
    try:
        if row.status == GraphSubscription.REAUTHORIZE:
            graph_subscriptions.reauthorize(client, row.subscription_id)
            row.status, row.last_error = GraphSubscription.ACTIVE, None
            audit.record("live.subscription_reauthorize", datasource.name, datasource=datasource.name,
                         resource=resource, subscription_id=row.subscription_id)
        if row.notification_url != notify_url or row.expires_at - now < RENEW_WHEN_LEFT:
            moved = row.notification_url != notify_url
            answer = graph_subscriptions.renew(client, row.subscription_id, now + LIFETIME,
                                               notify_url if moved else None)
            row.expires_at, row.renewed_at, row.last_error = answer.expires_at, now, None
            row.notification_url = notify_url
            audit.record("live.subscription_renew", datasource.name, datasource=datasource.name, resource=resource,
                         subscription_id=row.subscription_id, expires_at=answer.expires_at.isoformat(),
                         moved_to=notify_url if moved else None)
    except NotFound:  # Graph no longer has it (expired or removed without telling us)
        _forget(datasource, row, "Graph no longer knows it")
        _create(client, datasource, resource, notify_url, lifecycle_url)
        return True, ""
    db.session.commit()
    return False, ""


def _create(client: GraphClient, datasource: Datasource, resource: str, notify_url: str,
            lifecycle_url: str) -> GraphSubscription:
    """A new subscription with a fresh clientState (stored encrypted); orphans at Graph pointing at this gateway
    for this resource and unknown here (an earlier create whose answer was lost) are deleted first."""
    _delete_orphans(client, resource, notify_url)
    state = secrets.token_urlsafe(48)  # 64 characters; Graph allows 128
    answer = graph_subscriptions.create(client, resource=resource, notification_url=notify_url,
                                        lifecycle_url=lifecycle_url, client_state=state,
                                        expires_at=utcnow() + LIFETIME)
    row = GraphSubscription(datasource_id=datasource.id, subscription_id=answer.id, resource=resource,
                            change_type=answer.change_type or graph_subscriptions.CHANGE_TYPE,
                            client_state=secret_box().encrypt(state), status=GraphSubscription.ACTIVE,
                            expires_at=answer.expires_at, notification_url=notify_url)
    db.session.add(row)
    audit.record("live.subscription_create", datasource.name, datasource=datasource.name, resource=resource,
                  subscription_id=answer.id, expires_at=answer.expires_at.isoformat(), notification_url=notify_url)
    db.session.commit()
    return row


def _delete_orphans(client: GraphClient, resource: str, notify_url: str) -> None:
    known = set(db.session.scalars(select(GraphSubscription.subscription_id)))
    try:
        found = graph_subscriptions.list_all(client)
    except Office365Error as exc:
        log.info("listing Graph subscriptions failed (%s); no orphan clean-up this time", type(exc).__name__)
        return
    for sub in found:
        if sub.notification_url == notify_url and sub.resource.strip("/").lower() == resource \
                and sub.id not in known:
            try:
                graph_subscriptions.delete(client, sub.id)
                log.info("deleted orphan Graph subscription %s (%s)", sub.id, resource)
            except Office365Error as exc:
                log.info("could not delete orphan Graph subscription %s: %s", sub.id, type(exc).__name__)


def _forget(datasource: Datasource, row: GraphSubscription, why: str) -> None:
    audit.record("live.subscription_gone", datasource.name, datasource=datasource.name, resource=row.resource,
                 subscription_id=row.subscription_id, reason=why)
    db.session.delete(row)
    db.session.commit()


def _delete_at_graph(client: GraphClient, row: GraphSubscription) -> str:
    """Delete one subscription at Graph; "" when done (or already gone), else what went wrong."""
    try:
        graph_subscriptions.delete(client, row.subscription_id)
    except NotFound:
        return ""
    except Office365Error as exc:
        return str(exc)
    return ""


def remove_all(datasource_id: int) -> list[str]:
    """Delete every subscription of the datasource at Graph (best effort) and their rows. Returns the problems,
    one sentence per subscription Graph could not be told about (it then expires by itself). Commits."""
    rows = subscriptions_of(datasource_id)
    if not rows:
        return []
    datasource = db.session.get(Datasource, datasource_id)
    problems: list[str] = []
    client = _client(datasource) if datasource is not None and datasource.status == Datasource.READY else None
    for row in rows:
        if row.status == GraphSubscription.REMOVED or row.expires_at <= utcnow():
            problem = ""
        elif client is None:
            problem = "the data source is not authorized"
        else:
            try:
                problem = _delete_at_graph(client, row)
            except ReauthorizationRequired as exc:
                problem = exc.message
        if problem:
            problems.append(f"The {row.resource} subscription {row.subscription_id} could not be deleted at "
                            f"Microsoft ({problem}); it ends by itself on {row.expires_at:%Y-%m-%d %H:%M} UTC.")
        if datasource is not None:
            audit.record("live.subscription_delete", datasource.name, outcome="failure" if problem else "success",
                         datasource=datasource.name, resource=row.resource, subscription_id=row.subscription_id,
                         problem=problem or None)
    db.session.execute(delete(GraphSubscription).where(GraphSubscription.id.in_([row.id for row in rows])))
    db.session.commit()
    for problem in problems:
        log.warning("datasource %s: %s", datasource_id, problem)
    return problems


def forget_on_tenant_change(datasource: Datasource, old_tenant_id: str | None) -> TenantChangeEffect:
    """Change tenant (datasources.tenant_change): the subscriptions live in the old tenant, which the new grant
    cannot reach; their rows go in the change's transaction (they end by themselves at Graph), and the next
    `maintain` creates them in the new tenant."""
    rows = subscriptions_of(datasource.id)
    if not rows:
        return TenantChangeEffect()
    ids = [row.subscription_id for row in rows]
    db.session.execute(delete(GraphSubscription).where(GraphSubscription.datasource_id == datasource.id))
    return TenantChangeEffect(
        details={"graph_subscriptions_forgotten": ids, "old_tenant_id": old_tenant_id},
        notice="Live access: the old tenant's change-notification subscriptions were let go (they end by "
               "themselves); new ones are created in this tenant within a minute.")


def lifecycle_due(expires_at: datetime) -> datetime:
    """When `maintain` renews a subscription that expires at `expires_at`."""
    return expires_at - RENEW_WHEN_LEFT
