"""HTTP to identity providers (discovery, keys, token endpoint), bounded so a slow or hostile provider cannot hold
worker threads or reach inside the network.

Every request through `ProviderAdapter`:
- has a total deadline (the `timeout` given, e.g. `SSO_HTTP_TIMEOUT`): connect, headers and body together. A
  watchdog thread shuts the socket down when it passes, so a server dripping one byte a second cannot stretch it;
- reads at most `MAX_BODY_BYTES` (after decompression) and refuses redirects (a 3xx is an error, never followed);
- runs at most `MAX_IN_FLIGHT` at a time per provider origin and process (more fail at once), and after a
  transport failure (timeout, refused connection) the origin fails fast for 5 s, then 10, 20, ... up to 60 s;
- with `check_addresses` (generic providers), connects only to public addresses: the address checked is the one
  the socket is connected to (`getpeername`), before a byte is sent, so a DNS answer that changes between a check
  and the connection (rebinding) gains nothing. `allow_private` (SSO_ALLOW_PRIVATE_PROVIDERS, development and
  tests) admits loopback and private networks, never link-local (cloud metadata), multicast or unspecified.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import socket
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError

from oidc.id_tokens import FetchRefused as ProviderFetchRefused
from oidc.id_tokens import ProviderBusy, ProviderUnavailable

MAX_BODY_BYTES = 1024 * 1024
MAX_IN_FLIGHT = 2
BREAKER_FIRST, BREAKER_MAX = 5.0, 60.0
DEFAULT_DEADLINE = 10.0


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """Public (globally routable) addresses; with `allow_private` also loopback and private networks."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return False  # 169.254.169.254 and fd00:ec2::254 style metadata endpoints stay out even in development
    if ip.is_global:
        return True
    return allow_private and (ip.is_loopback or ip.is_private)


def host_allowed(host: str, *, allow_private: bool) -> bool:
    """For settings checked without resolving: a literal address must be allowed; `localhost` needs `allow_private`."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return allow_private
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return True  # a name: checked at each connection, where it is resolved
    return address_allowed(host, allow_private=allow_private)


# -- the deadline watchdog ----------------------------------------------------------------------------------------

class _Watchdog:
    """One thread per process that shuts down the sockets of fetches past their deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any, socket.socket]] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, connection: Any, raw: socket.socket) -> None:
        with self._condition:
            heapq.heappush(self._heap, (deadline, next(self._counter), connection, raw))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sso-http-deadline", daemon=True)
                self._thread.start()
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap:
                    self._condition.wait()
                deadline, _, connection, raw = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                heapq.heappop(self._heap)
            _shut(getattr(connection, "sock", None) or raw)


def _shut(sock: socket.socket | None) -> None:
    """Shut the socket down at the OS level: a thread blocked reading it (TLS or not) wakes with an error."""
    if sock is not None:
        with suppress(OSError, ValueError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


_watchdog = _Watchdog()
_current = threading.local()  # the fetch running on this thread: deadline and address rule


class AddressRefused(NewConnectionError):
    pass


def _vet(connection: HTTPConnection, sock: socket.socket) -> None:
    fetch: _Fetch | None = getattr(_current, "fetch", None)
    if fetch is None:
        return
    if fetch.check_addresses:
        peer = sock.getpeername()[0]
        if not address_allowed(peer, allow_private=fetch.allow_private):
            sock.close()
            hint = "" if fetch.allow_private else " (SSO_ALLOW_PRIVATE_PROVIDERS=1 admits loopback and private " \
                                                  "networks for development)"
            raise AddressRefused(connection, f"{connection.host} is at {peer}, which is not a public address{hint}")
    _watchdog.watch(fetch.deadline, connection, sock)


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _vet(self, sock)
        return sock


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _vet(self, sock)
        return sock


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


# -- per-origin gate: in-flight cap and breaker ---------------------------------------------------------------------

@dataclass
class _Gate:
    in_flight: int = 0
    failures: int = 0
    open_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, origin: str) -> None:
        with self.lock:
            wait = self.open_until - time.monotonic()
            if wait > 0:
                raise ProviderUnavailable(f"{origin} failed {self.failures} time(s) in a row; not asked again for "
                                          f"{wait:.0f} s")
            if self.in_flight >= MAX_IN_FLIGHT:
                raise ProviderBusy(f"{MAX_IN_FLIGHT} requests to {origin} are still waiting for an answer")
            self.in_flight += 1

    def leave(self, transport_failed: bool) -> None:
        with self.lock:
            self.in_flight -= 1
            if transport_failed:
                self.failures += 1
                self.open_until = time.monotonic() + min(BREAKER_MAX, BREAKER_FIRST * 2 ** (self.failures - 1))
            else:
                self.failures, self.open_until = 0, 0.0


@dataclass
class _Fetch:
    deadline: float
    check_addresses: bool
    allow_private: bool


class ProviderAdapter(HTTPAdapter):
    """A requests adapter with the bounds above; mount it for http:// and https:// on provider sessions."""

    def __init__(self, *, check_addresses: bool, allow_private: bool) -> None:
        self.check_addresses = check_addresses
        self.allow_private = allow_private
        self._gates: dict[str, _Gate] = {}
        self._gates_lock = threading.Lock()
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}

    def _gate(self, origin: str) -> _Gate:
        with self._gates_lock:
            return self._gates.setdefault(origin, _Gate())

    def send(self, request: requests.PreparedRequest, stream: bool = False,  # type: ignore[override]
             timeout: Any = None, verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        parts = urlsplit(request.url or "")
        if parts.scheme != "https" and not (parts.scheme == "http" and (self.allow_private
                                                                        or not self.check_addresses)):
            raise ProviderFetchRefused(f"{parts.scheme}:// is not allowed for an identity provider (https only)")
        budget = _total_seconds(timeout)
        origin = f"{parts.scheme}://{parts.netloc}"
        gate = self._gate(origin)
        gate.enter(origin)
        transport_failed = True
        _current.fetch = _Fetch(time.monotonic() + budget, self.check_addresses, self.allow_private)
        try:
            response = super().send(request, stream=True, timeout=(budget, budget), verify=verify, cert=cert,
                                    proxies=proxies)
            try:
                self._read_body(response, _current.fetch.deadline)
            finally:
                response.close()  # never back into the pool: each fetch gets a fresh, watched connection
            transport_failed = False
            return response
        except (requests.ConnectTimeout, requests.ReadTimeout):
            raise requests.Timeout(f"{origin} did not answer within {budget:g} s") from None
        except requests.ConnectionError as exc:
            reason = getattr(exc.args[0] if exc.args else None, "reason", None)
            if isinstance(reason, AddressRefused):
                raise ProviderFetchRefused(str(reason).split(": ", 1)[-1]) from None
            if time.monotonic() >= _current.fetch.deadline:
                raise requests.Timeout(f"{origin} did not answer within {budget:g} s") from None
            raise
        finally:
            _current.fetch = None
            gate.leave(transport_failed)

    def _read_body(self, response: requests.Response, deadline: float) -> None:
        if 300 <= response.status_code < 400:
            raise ProviderFetchRefused(f"{response.url} answered {response.status_code} (a redirect: not followed)")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise ProviderFetchRefused(f"{response.url} sent {int(declared)} bytes (more than {MAX_BODY_BYTES})")
        body = bytearray()
        try:
            for chunk in response.raw.stream(64 * 1024, decode_content=True):
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise ProviderFetchRefused(f"{response.url} sent more than {MAX_BODY_BYTES} bytes")
                if time.monotonic() >= deadline:
                    raise requests.Timeout(f"{response.url} did not finish within the deadline")
        except requests.RequestException:  # ours above (RequestException is an OSError)
            raise
        except (Urllib3Error, OSError) as exc:
            if time.monotonic() >= deadline:
                raise requests.Timeout(f"{response.url} did not finish within the deadline") from None
            raise requests.ConnectionError(f"{response.url}: {type(exc).__name__}") from None
        response._content = bytes(body)
        response._content_consumed = True


def _total_seconds(timeout: Any) -> float:
    if isinstance(timeout, int | float) and timeout > 0:
        return float(timeout)
    if isinstance(timeout, tuple) and all(isinstance(part, int | float) for part in timeout):
        return float(max(timeout))
    return DEFAULT_DEADLINE


def provider_session(adapter: ProviderAdapter, verify: str | bool) -> requests.Session:
    """A session that goes only through `adapter` (no proxies from the environment, no redirects)."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE must not override `verify`, nor HTTP(S)_PROXY the guard
    session.verify = verify
    session.max_redirects = 0
    mount(session, adapter)
    return session


def mount(session: requests.Session, adapter: ProviderAdapter) -> None:
    session.mount("https://", adapter)
    session.mount("http://", adapter)
