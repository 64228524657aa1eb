"""Change notifications (docs/microsoft.md §10): the subscriptions' store rows, the validation handshake, and the
`Notifier` that turns directory changes into Microsoft's webhook POSTs on a background thread.

The notifier reads the `changes` table (every directory write appends to it, whoever made it: Graph, `$batch`,
the control API), matches each new row against the live subscriptions, and posts the matching notifications to
each subscriber in batches, with retries and back-off, never on a Graph request's thread. Lifecycle notifications
(`reauthorizationRequired`, `subscriptionRemoved`, `missed`) go through the same delivery queue.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import re
import sqlite3
import threading
import time
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from flask import Flask, request

from emulator import clock

# Maximum subscription lifetime for user, group and other directory resources (docs/microsoft.md §10.1).
MAX_MINUTES = 41760
VALIDATION_TIMEOUT = 10.0          # seconds the subscriber has to echo validationToken
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
CHANGE_TYPES = ("created", "updated", "deleted")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SCAN_ROWS = 5000                   # changes read per scan (a burst is read in several scans, one after another)
DEFAULTS: dict[str, Any] = {
    "batch_size": 100,       # notifications per POST (Graph batches; its size is not documented)
    "timeout": 3.0,          # Graph's HTTP client timeout for a notification POST
    "retry_base": 10.0,      # first retry after this many seconds, doubling each time ...
    "retry_max": 600.0,      # ... up to this ...
    "retry_window": 14400.0,  # ... for 4 hours, then the notification is dropped
    "verify": False,         # TLS verification of https subscribers: False, True or a CA bundle path
    "poll": 0.5,             # seconds between scans of `changes` when no write woke the notifier
}


def graph_time(ts: float, *, offset: bool = False) -> str:
    """Graph's DateTimeOffset with 7 fractional digits: `...45.9356913Z` (or `+00:00` as notifications carry)."""
    text = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"
    return text + ("+00:00" if offset else "Z")


def parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text, re.IGNORECASE)
    if not m:
        return None
    base, frac, zone = m.group(1), (m.group(2) or "")[:7], m.group(3) or "Z"
    try:
        parsed = datetime.fromisoformat(base + frac + ("+00:00" if zone.upper() == "Z" else zone))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def url_problem(url: Any) -> str | None:
    """Why a notification or lifecycle URL is refused: https only, http only on the loopback (emulator tests)."""
    if not isinstance(url, str) or not url:
        return "is required"
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        return "must be an absolute URL"
    if parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK):
        return None
    return "must use the https scheme"


def parse_resource(resource: Any) -> tuple[str, str | None] | None:
    """('user' | 'group', object id or None) of `users`, `/users`, `users/{id}`, `groups`, `groups/{id}`."""
    if not isinstance(resource, str):
        return None
    m = re.match(r"^/?(users|groups)(?:/([^/?#]+))?/?$", resource.strip(), re.IGNORECASE)
    if not m:
        return None
    return m.group(1).lower()[:-1], m.group(2)


def change_types(value: Any) -> list[str] | None:
    if not isinstance(value, str):
        return None
    items = [v.strip() for v in value.split(",")]
    if not items or any(v not in CHANGE_TYPES for v in items):
        return None
    return items


# ---------------------------------------------------------------------------------------------- store rows


def subscription_json(row: sqlite3.Row) -> dict[str, Any]:
    """The Graph v1.0 `subscription` resource of a stored row."""
    return {"id": row["id"], "resource": row["resource"], "applicationId": row["application_id"],
            "changeType": row["change_type"], "clientState": row["client_state"],
            "notificationUrl": row["notification_url"], "notificationQueryOptions": None,
            "lifecycleNotificationUrl": row["lifecycle_url"],
            "expirationDateTime": graph_time(row["expiration"]), "creatorId": row["creator_id"],
            "includeResourceData": False, "latestSupportedTlsVersion": row["tls_version"],
            "encryptionCertificate": None, "encryptionCertificateId": None, "notificationUrlAppId": None}


def control_json(row: sqlite3.Row, now: float) -> dict[str, Any]:
    """The control API's view: the Graph resource plus the emulator's state of it."""
    return {**subscription_json(row), "tenantId": row["tenant_id"], "expired": row["expiration"] <= now,
            "reauthorizationRequired": bool(row["reauth_required"]), "paused": bool(row["paused"])}


def high_water(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0])


# ---------------------------------------------------------------------------------------------- handshake


def validation_token() -> str:
    """Opaque, like Microsoft's (which carries spaces and colons: the subscriber must URL-decode it)."""
    return f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"


def validate_endpoint(url: str, verify: Any) -> str | None:
    """POST url?validationToken=... (text/plain, empty body); None when the subscriber echoed the token as
    text/plain with 200 within 10 seconds, else Graph's error message."""
    token = validation_token()
    sep = "&" if urlsplit(url).query else "?"
    target = url + sep + urlencode({"validationToken": token})
    try:
        with requests.Session() as http:
            http.trust_env = False
            response = http.post(target, data=b"", headers={"Content-Type": "text/plain; charset=utf-8"},
                                 timeout=VALIDATION_TIMEOUT, verify=verify, allow_redirects=False)
    except requests.Timeout:
        return "Subscription validation request failed. Notification endpoint must respond within 10 seconds."
    except requests.RequestException as exc:
        return f"Subscription validation request failed. Notification endpoint is not reachable ({type(exc).__name__})."
    if response.status_code != 200:
        return ("Subscription validation request failed. Notification endpoint must respond with 200 OK to "
                f"validation request (got {response.status_code}).")
    if not response.headers.get("Content-Type", "").lower().startswith("text/plain"):
        return "Subscription validation request failed. Response must be of content type text/plain."
    if response.text != token:
        return "Subscription validation request failed. Response must exactly match validationToken query parameter."
    return None


# ---------------------------------------------------------------------------------------------- delivery


@dataclass(order=True)
class Delivery:
    """One POST to one subscriber URL: up to `batch_size` notifications, retried until delivered or too old."""

    due: float
    seq: int
    url: str = field(compare=False)
    items: list[dict] = field(compare=False)
    kind: str = field(compare=False, default="change")  # change | lifecycle
    attempts: int = field(compare=False, default=0)
    first: float = field(compare=False, default=0.0)


class Notifier:
    """Per app: scans `changes`, queues and posts notifications. `wake()` after a write; `stop()` at shutdown."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.store = app.extensions["emulator.store"]
        self.settings: dict[str, Any] = dict(DEFAULTS)
        self.lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        self.log: deque[dict] = deque(maxlen=500)
        self.queue: list[Delivery] = []     # heap by due time
        self.inflight = 0
        self.cursor: int | None = None      # last `changes.seq` looked at
        self.last_error: str | None = None  # of a scan that failed (report())
        self._seq = itertools.count()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    # -- life cycle

    def ensure_started(self) -> None:
        with self.lock:
            if self._thread is not None or self._stop.is_set():
                return
            self.cursor = high_water(self.store.conn())
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="emulator-notify")
            self._thread = threading.Thread(target=self._run, name="emulator-notifier", daemon=True)
            self._thread.start()

    def start_if_subscribed(self) -> None:
        if self.store.conn().execute("SELECT 1 FROM subscriptions LIMIT 1").fetchone():
            self.ensure_started()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread, pool = self._thread, self._pool
        if thread is not None:
            thread.join(timeout=5)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        if self._thread is not None:
            self._wake.set()

    # -- the loop

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=self._next_wait())
            self._wake.clear()
            if self._stop.is_set() or self.store.closed:
                return
            try:
                with self.app.app_context():
                    while self.scan() >= SCAN_ROWS:
                        pass
            except sqlite3.Error:
                time.sleep(0.2)  # a closing store or a busy database: try again on the next round
            except Exception as exc:  # noqa: BLE001 - a bug must not end delivery for the whole run: count, report
                with self.lock:
                    self.stats["scan_errors"] += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.2)
            finally:
                self.store.release()
            self._send_due()

    def _next_wait(self) -> float:
        poll = float(self.settings["poll"])
        with self.lock:
            if self.queue:
                return max(0.0, min(poll, self.queue[0].due - time.monotonic()))
        return poll

    def scan(self) -> int:
        """Queue notifications for up to SCAN_ROWS changes since the last scan; returns how many changes it read."""
        conn = self.store.conn()
        rows = conn.execute("SELECT * FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                            (self.cursor or 0, SCAN_ROWS)).fetchall()
        if not rows:
            return 0
        now = clock.now()
        subs = conn.execute("SELECT * FROM subscriptions").fetchall()
        expired = [s["id"] for s in subs if s["expiration"] <= now]
        if expired:  # Graph deletes subscriptions it was not asked to renew in time
            with self.store.transaction() as tx:
                tx.executemany("DELETE FROM subscriptions WHERE id = ?", [(i,) for i in expired])
            self._count("expired_removed", len(expired))
        live = [s for s in subs if s["expiration"] > now]
        by_url: dict[str, list[dict]] = {}
        lost = 0
        for change in rows:
            kind = change["kind"]
            change_type = "deleted" if change["removed"] == "deleted" and change["member_id"] is None else "updated"
            for sub in live:
                if sub["tenant_id"] != change["tenant_id"] or change["seq"] <= sub["since_seq"]:
                    continue
                target = parse_resource(sub["resource"])
                if target is None or target[0] != kind or (target[1] and target[1] != change["object_id"]):
                    continue
                if change_type not in sub["change_type"].split(","):
                    continue
                if sub["paused"]:
                    lost += 1  # Graph: changes made while delivery is paused for reauthorization are lost
                    continue
                by_url.setdefault(sub["notification_url"], []).append(
                    change_item(sub, kind, change["object_id"], change_type))
        if lost:
            self._count("lost_while_paused", lost)
        for url, items in by_url.items():
            self.enqueue(url, items, "change")
        self.cursor = rows[-1]["seq"]
        return len(rows)

    def enqueue(self, url: str, items: list[dict], kind: str) -> int:
        size = max(1, int(self.settings["batch_size"]))
        now = time.monotonic()
        with self.lock:
            for start in range(0, len(items), size):
                heapq.heappush(self.queue, Delivery(now, next(self._seq), url, items[start:start + size], kind,
                                                    0, now))
            self.stats[f"{kind}_notifications_queued"] += len(items)
        self._wake.set()
        return len(items)

    def _send_due(self) -> None:
        now = time.monotonic()
        due: list[Delivery] = []
        with self.lock:
            while self.queue and self.queue[0].due <= now:
                due.append(heapq.heappop(self.queue))
            self.inflight += len(due)
        for delivery in due:
            if self._pool is None:
                return
            try:
                self._pool.submit(self._post, delivery)
            except RuntimeError:  # the pool is shutting down with the emulator
                return

    def _post(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        status: int | None = None
        error = None
        try:
            with requests.Session() as http:
                http.trust_env = False
                response = http.post(delivery.url, data=json.dumps({"value": delivery.items}),
                                     headers={"Content-Type": "application/json; charset=utf-8"},
                                     timeout=float(self.settings["timeout"]), verify=self.settings["verify"],
                                     allow_redirects=False)
            status = response.status_code
        except requests.RequestException as exc:
            error = type(exc).__name__
        ok = status is not None and 200 <= status < 300
        entry = {"at": clock.now(), "url": delivery.url, "kind": delivery.kind, "count": len(delivery.items),
                 "attempt": delivery.attempts, "status": status, "error": error, "ok": ok,
                 "subscriptions": sorted({i["subscriptionId"] for i in delivery.items})}
        with self.lock:
            self.inflight -= 1
            self.log.append(entry)
            if ok:
                self.stats[f"{delivery.kind}_posts_delivered"] += 1
                self.stats[f"{delivery.kind}_notifications_delivered"] += len(delivery.items)
                return
            self.stats["failed_attempts"] += 1
            delay = min(float(self.settings["retry_max"]),
                        float(self.settings["retry_base"]) * 2 ** (delivery.attempts - 1))
            if time.monotonic() + delay - delivery.first > float(self.settings["retry_window"]):
                self.stats[f"{delivery.kind}_notifications_dropped"] += len(delivery.items)
                return
            delivery.due = time.monotonic() + delay
            heapq.heappush(self.queue, delivery)
        self._wake.set()

    def _count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key] += n

    # -- for the control API and tests

    def lifecycle(self, sub: sqlite3.Row, event: str) -> int:
        item = {"subscriptionId": sub["id"], "subscriptionExpirationDateTime": graph_time(sub["expiration"],
                                                                                         offset=True),
                "tenantId": sub["tenant_id"], "clientState": sub["client_state"], "lifecycleEvent": event}
        self.ensure_started()
        return self.enqueue(sub["lifecycle_url"], [item], "lifecycle")

    def record_validation(self, url: str, problem: str | None) -> None:
        with self.lock:
            self.stats["validations"] += 1
            if problem:
                self.stats["validation_failures"] += 1
            self.log.append({"at": clock.now(), "url": url, "kind": "validation", "count": 0, "attempt": 1,
                             "status": None, "error": problem, "ok": problem is None, "subscriptions": []})

    def idle(self) -> bool:
        with self.lock:
            busy = self.inflight > 0 or any(d.due <= time.monotonic() for d in self.queue)
        if busy:
            return False
        return self.cursor is None or self.cursor >= high_water(self.store.conn())

    def wait_idle(self, timeout: float) -> bool:
        """Until every change is scanned and nothing is due or in flight (retries scheduled later don't count)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.wake()
            if self.idle():
                return True
            time.sleep(0.02)
        return self.idle()

    def report(self) -> dict[str, Any]:
        with self.lock:
            return {"stats": dict(self.stats), "pending": len(self.queue), "inflight": self.inflight,
                    "deliveries": list(self.log), "settings": dict(self.settings),
                    "running": self._thread is not None, "last_error": self.last_error}

    def discard(self, sub_id: str) -> int:
        """Drop the queued (not yet delivered) notifications of one subscription; returns how many."""
        dropped = 0
        with self.lock:
            for delivery in self.queue:
                keep = [i for i in delivery.items if i["subscriptionId"] != sub_id]
                dropped += len(delivery.items) - len(keep)
                delivery.items = keep
            self.queue = [d for d in self.queue if d.items]
            heapq.heapify(self.queue)
            self.stats["change_notifications_discarded"] += dropped
        return dropped

    def reset(self) -> None:
        with self.lock:
            self.stats.clear()
            self.log.clear()
            self.queue.clear()

    def configure(self, values: dict[str, Any]) -> dict[str, Any]:
        unknown = set(values) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        for key, value in values.items():
            if key == "verify":
                if not isinstance(value, bool | str):
                    raise ValueError("verify is true, false or a CA bundle path")
            elif not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key} must be a number >= 0")
        with self.lock:
            self.settings.update(values)
            return dict(self.settings)


def change_item(sub: sqlite3.Row, kind: str, object_id: str, change_type: str) -> dict[str, Any]:
    """One changeNotification as Graph sends it for a user or group (no resource data beyond the ids)."""
    entity = "Users" if kind == "user" else "Groups"
    return {"subscriptionId": sub["id"],
            "subscriptionExpirationDateTime": graph_time(sub["expiration"], offset=True),
            "changeType": change_type, "resource": f"{entity}/{object_id}",
            "resourceData": {"@odata.type": f"#Microsoft.Graph.{entity[:-1]}", "@odata.id": f"{entity}/{object_id}",
                             "id": object_id, "organizationId": sub["tenant_id"]},
            "clientState": sub["client_state"], "tenantId": sub["tenant_id"]}


def notifier(app: Flask) -> Notifier:
    return app.extensions["emulator.notifier"]


def init_app(app: Flask) -> Notifier:
    """Attach the notifier; writes wake it at once (no waiting for its poll), and it starts with the first
    subscription (or at start-up when the store already holds some)."""
    note = Notifier(app)
    app.extensions["emulator.notifier"] = note

    @app.after_request
    def _wake_after_write(response: Any) -> Any:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            note.wake()
        return response

    with contextlib.suppress(sqlite3.Error):
        note.start_if_subscribed()
    return note
