"""What a change or lifecycle notification from Graph does (docs/microsoft.md §10.3, §10.4), checked item by item.

An item is acted on only when it names a subscription this gateway holds, carries its clientState (compared in
constant time with the stored, encrypted one), its tenant is the datasource's, and its resource is of the
subscription's kind. A change notification is then recorded (counters, last notification) and asks for one
debounced delta round of the datasource (`live.sync.request_sync`): never any directory work here, so Graph gets
its 202 within milliseconds and a burst of 10,000 notifications costs a few rounds.

Replays. Graph's notifications on users and groups carry no id or time: two changes of one user within a minute
are two identical items. A repeat (its digest acted on within LIVE_REPLAY_WINDOW_SECONDS) is therefore refused as a
replay only while no delta round has started since the first copy was acted on (`last_round_started_at`): the
round that copy asked for is still waiting and reads every change made until it starts, so the repeat cannot add
anything. Once a round started, an identical item may report a newer change and is acted on like any other.
Identical items within one post are one notification. A replayed capture thus costs at most one debounced round
per round, never the work of one round per copy.

Lifecycle events: `reauthorizationRequired` marks the subscription for reauthorization, `subscriptionRemoved`
marks it removed, `missed` asks for a delta round and puts polling on until one finished; the Graph calls that
follow (reauthorize, create again) are `live.subscriptions.maintain`'s, run after the answer is sent.
"""

from __future__ import annotations

import hmac
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from core.crypto import InvalidToken, secret_box
from core.extensions import db
from core.models import Datasource, utcnow
from live import replay
from live.models import GraphSubscription, LiveAccess
from live.refusals import Refusal
from live.sync import request_sync

log = logging.getLogger(__name__)

MAX_ITEMS = 1000  # items in one post; Graph's batches are far smaller
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")


class Malformed(ValueError):
    """The body is not a notification collection; the message says why (no secret in it)."""


@dataclass
class Outcome:
    """What one post did: items acted on (per datasource), refusals, and datasources whose subscriptions need
    `maintain` after the answer (lifecycle events)."""

    accepted: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    refusals: list[Refusal] = field(default_factory=list)
    maintain: set[int] = field(default_factory=set)

    @property
    def genuine(self) -> bool:
        """At least one item carried a valid subscription and clientState (replays included)."""
        return bool(self.accepted) or any(r.reason == "replayed" for r in self.refusals) or bool(self.maintain)


def items_of(body: Any) -> list[dict[str, Any]]:
    """The `value` list of a notification collection; raises `Malformed`."""
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise Malformed('the body is not {"value": [...]}')
    items = body["value"]
    if not items:
        raise Malformed("the value list is empty")
    if len(items) > MAX_ITEMS:
        raise Malformed(f"more than {MAX_ITEMS} items")
    if not all(isinstance(item, dict) for item in items):
        raise Malformed("an item is not an object")
    return items


@dataclass
class _Known:
    subscription: GraphSubscription
    datasource: Datasource
    live: LiveAccess | None
    client_state: str


def _known(ids: set[str]) -> dict[str, _Known]:
    """The subscriptions named (one query), with their datasource, live access and decrypted clientState."""
    rows = db.session.execute(
        select(GraphSubscription, Datasource, LiveAccess)
        .join(Datasource, Datasource.id == GraphSubscription.datasource_id)
        .outerjoin(LiveAccess, LiveAccess.datasource_id == GraphSubscription.datasource_id)
        .where(GraphSubscription.subscription_id.in_(sorted(ids)))).all()
    known = {}
    for sub, datasource, live in rows:
        try:
            state = secret_box().decrypt(sub.client_state)
        except InvalidToken:  # a key was dropped too early: no item can match it
            log.error("the clientState of subscription %s cannot be decrypted with TOKEN_ENCRYPTION_KEYS",
                      sub.subscription_id)
            state = ""
        known[sub.subscription_id] = _Known(sub, datasource, live, state)
    return known


def _check(item: dict[str, Any], known: dict[str, _Known]) -> tuple[_Known | None, Refusal | None]:
    """The subscription an item belongs to when it is genuine, else why it is refused."""
    sub_id = item.get("subscriptionId")
    if not isinstance(sub_id, str) or not sub_id:
        return None, Refusal("malformed", "an item has no subscriptionId")
    found = known.get(sub_id)
    if found is None:
        return None, Refusal("unknown_subscription", subscription_id=sub_id)
    ds_id = found.datasource.id
    given = item.get("clientState")
    if not isinstance(given, str) or not found.client_state \
            or not hmac.compare_digest(given.encode(), found.client_state.encode()):
        return None, Refusal("client_state", datasource_id=ds_id, subscription_id=sub_id)
    tenant = item.get("tenantId")
    if not isinstance(tenant, str) or tenant.lower() != (found.datasource.tenant_id or "").lower():
        return None, Refusal("tenant", "the item's tenantId is not the data source's tenant", ds_id, sub_id)
    return found, None


def _replayed(live: LiveAccess, first: datetime | None) -> bool:
    """A repeat that cannot add anything: acted on at `first`, and no round has started since (the round that
    copy asked for is still waiting, and will read every change made until it starts)."""
    if first is None or live.sync_requested_at is None:
        return False
    started = live.last_round_started_at
    return started is None or started.astimezone(UTC) < first


def receive_changes(items: list[dict[str, Any]]) -> Outcome:
    """Check each change notification; record the genuine ones and ask for a delta round per datasource."""
    outcome = Outcome()
    known = _known({item["subscriptionId"] for item in items if isinstance(item.get("subscriptionId"), str)})
    now = utcnow()
    fresh: dict[int, list[str]] = defaultdict(list)  # datasource -> digests acted on
    touched: dict[int, set[int]] = defaultdict(set)  # datasource -> subscription rows
    replayed: dict[tuple[int, str], int] = defaultdict(int)
    seen = replay.store()
    keys = [replay.digest(item) for item in items]
    pending = any(k.live is not None and k.live.sync_requested_at is not None for k in known.values())
    earlier = seen.seen_many(keys) if pending else {}  # no round waiting: nothing can be a replay
    for item, key in zip(items, keys, strict=True):
        found, refusal = _check(item, known)
        if refusal is not None:
            outcome.refusals.append(refusal)
            continue
        assert found is not None
        ds_id = found.datasource.id
        resource = item.get("resource")
        kind = found.subscription.resource[:-1]  # "user" / "group"
        if not isinstance(resource, str) or not resource.lower().startswith(kind + "s/"):
            outcome.refusals.append(Refusal("resource", f"{str(resource)[:80]!r} on a {kind}s subscription",
                                            ds_id, found.subscription.subscription_id))
            continue
        if found.live is None or not found.live.enabled:
            continue  # live access was turned off meanwhile: its subscriptions are being deleted
        if key in fresh[ds_id]:
            outcome.accepted[ds_id] += 1  # the same change notification twice in one post: one notification
            continue
        if _replayed(found.live, earlier.get(key)):
            replayed[(ds_id, found.subscription.subscription_id)] += 1
            continue
        fresh[ds_id].append(key)
        touched[ds_id].add(found.subscription.id)
        outcome.accepted[ds_id] += 1
    outcome.refusals.extend(Refusal("replayed", "the same notification again before the round it asked for began",
                                    ds_id, sub_id, count)
                            for (ds_id, sub_id), count in replayed.items())
    for ds_id, count in outcome.accepted.items():
        db.session.execute(update(LiveAccess).where(LiveAccess.datasource_id == ds_id).values(
            notifications_received=LiveAccess.notifications_received + count, last_notification_at=now))
        if touched[ds_id]:
            db.session.execute(update(GraphSubscription).where(GraphSubscription.id.in_(touched[ds_id]))
                               .values(last_notification_at=now))
    db.session.commit()
    seen.remember([key for keys in fresh.values() for key in keys], now)
    for ds_id in outcome.accepted:
        if fresh[ds_id]:
            request_sync(ds_id, "notification")
    return outcome


def receive_lifecycle(items: list[dict[str, Any]]) -> Outcome:
    """Check each lifecycle notification and note what it asks for; `maintain` does the Graph side after."""
    outcome = Outcome()
    known = _known({item["subscriptionId"] for item in items if isinstance(item.get("subscriptionId"), str)})
    now = utcnow()
    missed: set[int] = set()
    for item in items:
        found, refusal = _check(item, known)
        if refusal is not None:
            outcome.refusals.append(refusal)
            continue
        assert found is not None
        event = item.get("lifecycleEvent")
        sub = found.subscription
        if event not in LIFECYCLE_EVENTS:
            outcome.refusals.append(Refusal("malformed", f"unknown lifecycleEvent {str(event)[:40]!r}",
                                            found.datasource.id, sub.subscription_id))
            continue
        log.info("lifecycle notification %s for subscription %s (datasource %s)", event, sub.subscription_id,
                 found.datasource.id)
        sub.last_lifecycle_event, sub.last_lifecycle_at = str(event), now
        if event == "reauthorizationRequired" and sub.status == GraphSubscription.ACTIVE:
            sub.status = GraphSubscription.REAUTHORIZE
        elif event == "subscriptionRemoved":
            sub.status = GraphSubscription.REMOVED
        elif event == "missed":
            missed.add(found.datasource.id)
        outcome.accepted[found.datasource.id] += 1
        outcome.maintain.add(found.datasource.id)  # after the answer: the Graph calls, and the fallback reason
    for ds_id in missed:
        db.session.execute(update(LiveAccess).where(LiveAccess.datasource_id == ds_id).values(missed_at=now))
    db.session.commit()
    for ds_id in missed:
        request_sync(ds_id, "missed")
    return outcome


def receive_any(items: list[dict[str, Any]]) -> Outcome:
    """What the change notification URL gets: change notifications, and any lifecycle event Graph sends there
    (an item with `lifecycleEvent`), each handled as such."""
    events = [item for item in items if "lifecycleEvent" in item]
    changes = [item for item in items if "lifecycleEvent" not in item]
    outcome = receive_changes(changes) if changes else Outcome()
    if events:
        other = receive_lifecycle(events)
        for ds_id, count in other.accepted.items():
            outcome.accepted[ds_id] += count
        outcome.refusals += other.refusals
        outcome.maintain |= other.maintain
    return outcome
