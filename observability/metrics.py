"""Prometheus metrics (prometheus_client), correct under several gunicorn workers.

Two kinds:
- Events counted where they happen (forward-auth decisions, sign-ins, Graph requests, token refreshes). Under
  gunicorn `PROMETHEUS_MULTIPROC_DIR` is set (gunicorn.conf.py does it) and each worker writes its own files;
  a scrape adds them up, and a dead worker's files are marked by gunicorn's child_exit hook.
- State read from the database when scraped (sessions, datasources, jobs, import lag): the feature packages add
  their readings with `add_reading`, so every worker answers the same and nothing is kept per process.

`/metrics` answers only with `Authorization: Bearer <METRICS_TOKEN>`; without METRICS_TOKEN it is a 404. It is
never public by accident, even behind a proxy on the same host.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
GRAPH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

FORWARD_AUTH_DECISIONS = Counter(
    "gateway_forward_auth_decisions", "Forward-auth answers by outcome (allowed, denied, not_signed_in, invalid) "
    "and policy (a named policy, query, none, unknown).", ["outcome", "policy"])
FORWARD_AUTH_SECONDS = Histogram(
    "gateway_forward_auth_duration_seconds", "Time to decide a forward-auth request.", buckets=LATENCY_BUCKETS)
SIGN_INS = Counter("gateway_sign_ins", "Sign-in attempts by provider (local for passwords) and outcome.",
                   ["provider", "outcome"])
GRAPH_REQUESTS = Counter("gateway_graph_requests", "Microsoft Graph HTTP requests by operation and status "
                         "(the HTTP status, or error when no answer came).", ["operation", "status"])
GRAPH_THROTTLED = Counter("gateway_graph_throttled", "Graph answers 429 (throttled), by operation.", ["operation"])
GRAPH_RETRIES = Counter("gateway_graph_retries", "Graph requests sent again after a 429, 5xx or network error.",
                        ["operation"])
GRAPH_SECONDS = Histogram("gateway_graph_request_duration_seconds", "Time of one Graph HTTP request.",
                          ["operation"], buckets=GRAPH_BUCKETS)
GRAPH_NOTIFICATIONS = Counter(
    "gateway_graph_notifications", "Items posted by Microsoft Graph to the notification endpoint, by kind (change, "
    "lifecycle) and outcome (accepted, or why refused: unknown_subscription, client_state, tenant, resource, "
    "replayed, malformed, too_large, invalid_text; limited: a post refused unread).", ["kind", "outcome"])
TOKEN_REFRESHES = Counter("gateway_token_refreshes", "MSAL refresh-token redemptions by outcome (success, "
                          "failure).", ["outcome"])

Reading = Callable[[], Iterable[Metric]]
_readings: list[Reading] = []
_enabled = True


def add_reading(reading: Reading) -> None:
    """Register a function that yields metric families read at scrape time (within the app context)."""
    if reading not in _readings:
        _readings.append(reading)


def enabled() -> bool:
    return _enabled


class _Readings(Collector):
    def collect(self) -> Iterable[Metric]:
        for reading in list(_readings):
            try:
                yield from reading()
            except Exception:  # noqa: BLE001 - one failing reading (database down) must not hide the others
                current_app.logger.warning("metrics reading %s failed", getattr(reading, "__name__", reading),
                                           exc_info=True)

    def describe(self) -> Iterable[Metric]:
        return []  # read at scrape time only: never called at registration


def policy_label(args: Any, policies: dict[str, Any]) -> str:
    """`policy=` when the settings know it (bounded by the settings), else query, none or unknown."""
    name = args.get("policy")
    if name:
        return name if name in policies else "unknown"
    if args.get("allowed_groups") or args.get("allowed_emails") or args.get("allowed_domains"):
        return "query"
    return "none"


class _ForwardAuthTally:
    """Forward-auth decisions tallied in plain numbers and added to the Prometheus values once a second (by a
    thread of each process) and before a scrape answered by this process. /auth/verify is the hot path: three
    multiprocess-mode writes (a counter, a bucket, the sum) cost about 12 us a request, the tally under 1 us."""

    FLUSH_SECONDS = 1.0

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bounds = list(FORWARD_AUTH_SECONDS._upper_bounds)  # noqa: SLF001 - the histogram's own buckets, +Inf last
        self._reset()
        self.flusher: threading.Thread | None = None
        self.pid = 0

    def _reset(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.buckets = [0] * len(self.bounds)
        self.total = 0.0

    def record(self, outcome: str, policy: str, seconds: float) -> None:
        with self.lock:
            key = (outcome, policy)
            self.counts[key] = self.counts.get(key, 0) + 1
            self.buckets[bisect_left(self.bounds, seconds)] += 1
            self.total += seconds
        if self.pid != os.getpid():  # first use in this process (gunicorn forks workers): start its flusher
            self._start()

    def _start(self) -> None:
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
            self.flusher = threading.Thread(target=self._flush_forever, name="metrics-flush", daemon=True)
            self.flusher.start()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.FLUSH_SECONDS)
            self.flush()

    def flush(self) -> None:
        with self.lock:
            counts, buckets, total = self.counts, self.buckets, self.total
            self._reset()
        for (outcome, policy), count in counts.items():
            FORWARD_AUTH_DECISIONS.labels(outcome, policy).inc(count)
        for index, count in enumerate(buckets):
            if count:
                FORWARD_AUTH_SECONDS._buckets[index].inc(count)  # noqa: SLF001 - n observations at once
        if total:
            FORWARD_AUTH_SECONDS._sum.inc(total)  # noqa: SLF001


_tally = _ForwardAuthTally()


def forward_auth_decision(outcome: str, policy: str, seconds: float) -> None:
    if _enabled:
        _tally.record(outcome, policy, seconds)


def sign_in(provider: str, outcome: str) -> None:
    if _enabled:
        SIGN_INS.labels(provider, outcome).inc()


def graph_request(operation: str, status: str, seconds: float, retried: bool) -> None:
    """What office365's observer reports for each Graph HTTP request (wired by observability.install)."""
    if not _enabled:
        return
    GRAPH_REQUESTS.labels(operation, status).inc()
    GRAPH_SECONDS.labels(operation).observe(seconds)
    if status == "429":
        GRAPH_THROTTLED.labels(operation).inc()
    if retried:
        GRAPH_RETRIES.labels(operation).inc()


def graph_notifications(kind: str, outcome: str, count: int = 1) -> None:
    if _enabled and count:
        GRAPH_NOTIFICATIONS.labels(kind, outcome).inc(count)


def token_refresh(outcome: str) -> None:
    if _enabled:
        TOKEN_REFRESHES.labels(outcome).inc()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def scrape_registry() -> CollectorRegistry:
    """Every worker's counters (multiprocess mode) or this process's, plus the readings."""
    _tally.flush()
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_ProcessCounters())
    registry.register(_Readings())
    return registry


def process_registry() -> CollectorRegistry:
    """This process's counters only (no database readings): what a job worker's own listener serves."""
    registry = CollectorRegistry()
    registry.register(_ProcessCounters())
    return registry


def serve_process_counters(address: str, port: int) -> None:
    """A listener of its own for a process that is not a web worker (`flask jobs worker --metrics-port`)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=address, registry=process_registry())


class _ProcessCounters(Collector):
    """The default registry's gateway_ metrics: this process's own values."""

    def collect(self) -> Iterable[Metric]:
        for family in REGISTRY.collect():
            if family.name.startswith("gateway_"):
                yield family


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    token = current_app.config.get("METRICS_TOKEN")
    if not token or not _enabled:
        abort(404)
    offered = request.headers.get("Authorization", "")
    if not hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
        response = Response("metrics need the bearer token (METRICS_TOKEN)\n", status=401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body = generate_latest(scrape_registry())
    return Response(body, mimetype=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def install(app: Flask) -> None:
    global _enabled
    _enabled = bool(app.config.get("METRICS_ENABLED", True))
    app.register_blueprint(bp)
