"""A small, resilient Microsoft Graph v1.0 client on `requests` (no Flask here).

A call flows: token (from the `TokenSource`) -> request (client-request-id, timeouts, ConsistencyLevel when the
query needs it) -> retry (429/503/504 honouring Retry-After, else capped exponential backoff with jitter, all
within one deadline; one fresh token after a 401) -> result (a `GraphResponse`, a `Page`, an iterator of items)
or a typed error from `office365.errors`.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from office365 import observe
from office365.errors import (
    GraphError,
    GraphUnavailable,
    ReauthorizationRequired,
    Throttled,
    error_from_response,
)

log = logging.getLogger(__name__)

BATCH_LIMIT = 20
RETRY_STATUSES = frozenset({429, 503, 504})
_ADVANCED_FILTER = re.compile(r"\bendswith\s*\(|\sne\s|\bnot\s*\(|\bnot\s", re.IGNORECASE)


class TokenSource(Protocol):
    """Where access tokens come from (the datasource's MSAL cache in the product)."""

    @property
    def granted_scopes(self) -> frozenset[str]: ...

    def access_token(self, *, force_refresh: bool = False) -> str:
        """A bearer token for Graph; raises `ReauthorizationRequired` when none can be had silently."""
        ...


@dataclass
class StaticTokenSource:
    """A fixed token (tests, scripts). `refresh`, when given, is called for `force_refresh=True`."""

    token: str
    scopes: frozenset[str] = frozenset()
    refresh: Callable[[], str] | None = None

    @property
    def granted_scopes(self) -> frozenset[str]:
        return self.scopes

    def access_token(self, *, force_refresh: bool = False) -> str:
        if force_refresh and self.refresh is not None:
            self.token = self.refresh()
        return self.token

    def __repr__(self) -> str:  # never show the token
        return f"StaticTokenSource(scopes={sorted(self.scopes)!r})"


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. `deadline` bounds one call, waits included; Retry-After is honoured up to its cap."""

    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    retry_after_cap: float = 60.0
    deadline: float = 90.0

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff with jitter for retry number `attempt` (1-based)."""
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(delay / 2, delay)

    def retry_after(self, value: str | None) -> float | None:
        """Seconds to wait from a Retry-After header (seconds or HTTP date), capped; None if absent/garbled."""
        if not value:
            return None
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            seconds = when.timestamp() - time.time()
        return max(0.0, min(seconds, self.retry_after_cap))


@dataclass
class GraphResponse:
    status: int
    body: Any
    headers: Mapping[str, str]
    request_id: str | None
    client_request_id: str
    content: bytes = b""  # the body as received (the import stages delta pages without serialising them again)


@dataclass
class Page:
    """One page of a collection; `next_link` is the cursor to the next page (None on the last)."""

    items: list[dict[str, Any]]
    next_link: str | None
    count: int | None
    request_id: str | None


@dataclass
class BatchRequest:
    id: str
    method: str
    url: str  # relative to the version root, e.g. "/users/{id}/assignLicense"
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"id": self.id, "method": self.method, "url": self.url}
        headers = dict(self.headers)
        if self.body is not None:
            item["body"] = self.body
            headers.setdefault("Content-Type", "application/json")
        if headers:
            item["headers"] = headers
        return item


@dataclass
class BatchResult:
    id: str
    status: int
    body: Any
    request_id: str | None
    error: GraphError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class GraphClient:
    """Talks to one Graph base URL (`https://graph.microsoft.com/v1.0` or the emulator's) for one token source."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        *,
        ca_bundle: str | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self.last_request_id: str | None = None
        self.last_client_request_id: str | None = None
        self.requests_sent = 0  # HTTP requests sent, retries included
        self.throttled = 0  # 429 answers seen (whole requests and $batch items): callers slow down on it
        self.stop_by: float | None = None  # on this client's clock: no call waits past it (a page's deadline)
        if session is None:
            session = requests.Session()
            session.mount("https://", HTTPAdapter(pool_maxsize=8, max_retries=0))
            session.mount("http://", HTTPAdapter(pool_maxsize=8, max_retries=0))
        # REQUESTS_CA_BUNDLE would silently override `verify` unless the environment is ignored.
        session.trust_env = False
        session.verify = ca_bundle or True
        self.session = session

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)

    def limit_to(self, seconds: float) -> None:
        """Every later call, retries and waits included, ends within `seconds` from now (a page's deadline)."""
        self.stop_by = self._clock() + seconds

    def _stop_at(self, seconds: float) -> float:
        stop_at = self._clock() + seconds
        return stop_at if self.stop_by is None else min(stop_at, self.stop_by)

    def close(self) -> None:
        self.session.close()

    # -- single calls ---------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        advanced: bool | None = None,
        idempotent: bool | None = None,
        deadline: float | None = None,
    ) -> GraphResponse:
        """One Graph call with retries; returns a 2xx answer or raises a typed `GraphError`.

        `advanced` sends `ConsistencyLevel: eventual` (default: when the query needs it). `idempotent` says
        whether a call whose fate is unknown (dropped connection, read timeout) may be sent again; default: GET.
        """
        method = method.upper()
        url = self._url(path, params)
        if idempotent is None:
            idempotent = method in ("GET", "HEAD")
        if advanced is None:
            advanced = needs_eventual_consistency(url)
        started = self._clock()
        stop_at = self._stop_at(self.retry.deadline if deadline is None else deadline)
        refreshed = force_refresh = False
        attempt = 0
        while True:
            attempt += 1
            # May raise ReauthorizationRequired (refresh refused): nothing has been sent yet.
            token = self.tokens.access_token(force_refresh=True) if force_refresh else self.tokens.access_token()
            force_refresh = False
            client_request_id = str(uuid.uuid4())
            send_headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "client-request-id": client_request_id,
                "return-client-request-id": "true",
            }
            if advanced:
                send_headers["ConsistencyLevel"] = "eventual"
            if headers:
                send_headers.update(headers)
            remaining = stop_at - self._clock()
            if remaining <= 0:
                raise GraphUnavailable(
                    f"Microsoft Graph did not answer {method} {_short(url)} within the "
                    f"{stop_at - started:.0f} s allowed. Try again in a few minutes.",
                    client_request_id=client_request_id,
                )
            timeout = (min(self.timeouts.connect, remaining), min(self.timeouts.read, remaining))
            self.last_client_request_id = client_request_id
            self.requests_sent += 1
            operation = observe.operation_name(method, urlsplit(url).path[len(urlsplit(self.base_url).path):])
            sent_at = time.perf_counter()
            try:
                resp = self.session.request(
                    method, url, json=json_body, headers=send_headers, timeout=timeout, allow_redirects=False
                )
            except requests.RequestException as exc:
                observe.graph_request(operation, "error", time.perf_counter() - sent_at, attempt > 1)
                never_sent = _never_sent(exc)
                log.info(
                    "graph %s %s attempt %d: %s (client-request-id %s)",
                    method, _short(url), attempt, type(exc).__name__, client_request_id,
                )
                if not (idempotent or never_sent):
                    raise GraphUnavailable(
                        f"The connection to Microsoft Graph failed during {method} {_short(url)} "
                        f"({type(exc).__name__}); the change may or may not have been applied. "
                        "Check the current state before trying again.",
                        client_request_id=client_request_id,
                    ) from exc
                wait = self.retry.backoff(attempt)
                if attempt >= self.retry.max_attempts or self._clock() + wait >= stop_at:
                    raise GraphUnavailable(
                        f"Could not reach Microsoft Graph for {method} {_short(url)} after {attempt} attempts "
                        f"({type(exc).__name__}). Check the network and try again in a few minutes.",
                        client_request_id=client_request_id,
                    ) from exc
                self._sleep(wait)
                continue

            observe.graph_request(operation, str(resp.status_code), time.perf_counter() - sent_at, attempt > 1)
            request_id = resp.headers.get("request-id")
            self.last_request_id = request_id or self.last_request_id
            body = _parse_body(resp)
            log.debug("graph %s %s -> %d request-id %s", method, _short(url), resp.status_code, request_id)
            if resp.status_code < 400:
                return GraphResponse(resp.status_code, body, resp.headers, request_id, client_request_id,
                                     resp.content)

            if resp.status_code == 401:
                if not refreshed:  # expired or revoked token: one retry with a fresh one
                    refreshed = force_refresh = True
                    continue
                err = error_from_response(401, body, request_id=request_id)
                raise ReauthorizationRequired(
                    "Microsoft Graph rejected the data source's access token even after a refresh "
                    f"({err.code or 401}: {err.graph_message or 'unauthorized'}). "
                    "An administrator must Re-Authorize the data source.",
                    request_id=request_id,
                )

            if resp.status_code in RETRY_STATUSES:
                self.throttled += resp.status_code == 429
                wait = self.retry.retry_after(resp.headers.get("Retry-After"))
                if wait is None:
                    wait = self.retry.backoff(attempt)
                if attempt < self.retry.max_attempts and self._clock() + wait < stop_at:
                    log.info(
                        "graph %s %s -> %d, retrying in %.2f s (request-id %s)",
                        method, _short(url), resp.status_code, wait, request_id,
                    )
                    self._sleep(wait)
                    continue
                err = error_from_response(
                    resp.status_code, body, request_id=request_id, client_request_id=client_request_id
                )
                cls = Throttled if resp.status_code == 429 else GraphUnavailable
                raise cls(
                    f"Microsoft Graph kept answering {resp.status_code} ({err.code or 'no code'}) to "
                    f"{method} {_short(url)} after {attempt} attempts. {cls.hint}",
                    status=resp.status_code,
                    code=err.code,
                    graph_message=err.graph_message,
                    request_id=request_id,
                    client_request_id=client_request_id,
                )

            raise error_from_response(
                resp.status_code, body, request_id=request_id, client_request_id=client_request_id
            )

    def get(self, path: str, *, params: Mapping[str, str | int] | None = None, **kw: Any) -> GraphResponse:
        return self.request("GET", path, params=params, **kw)

    # -- paging ---------------------------------------------------------------------------------------------

    def get_page(
        self,
        path_or_cursor: str,
        *,
        params: Mapping[str, str | int] | None = None,
        advanced: bool | None = None,
    ) -> Page:
        """One page: `path_or_cursor` is a path with `params`, or a previous page's `next_link`."""
        if _is_absolute(path_or_cursor):
            params = None  # a nextLink carries the whole query
        resp = self.request("GET", path_or_cursor, params=params, advanced=advanced)
        body = resp.body if isinstance(resp.body, dict) else {}
        return Page(
            items=list(body.get("value") or []),
            next_link=body.get("@odata.nextLink"),
            count=body.get("@odata.count"),
            request_id=resp.request_id,
        )

    def iter_pages(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        advanced: bool | None = None,
    ) -> Iterator[Page]:
        """Every page of a collection, following `@odata.nextLink` (even past empty pages). Keeps one page."""
        if advanced is None:
            advanced = needs_eventual_consistency(self._url(path, params))
        next_link: str | None = path
        first = True
        while next_link:
            page = self.get_page(next_link, params=params if first else None, advanced=advanced)
            first = False
            next_link = page.next_link
            yield page
            del page  # hold no page while the next one is fetched

    def iter_items(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        advanced: bool | None = None,
    ) -> Iterator[dict[str, Any]]:
        for page in self.iter_pages(path, params=params, advanced=advanced):
            yield from page.items

    # -- JSON batching --------------------------------------------------------------------------------------

    def iter_batch(self, items: Iterable[BatchRequest], *, idempotent: bool = False) -> Iterator[BatchResult]:
        """Send `items` through `POST /$batch`, 20 at a time; yields one result per item, chunk by chunk.

        Items answering 429/503/504 are sent again (in a later batch) after their Retry-After, within the
        deadline; the rest get a typed `error`. `idempotent` allows resending a batch whose fate is unknown.
        """
        chunk: list[BatchRequest] = []
        for item in items:
            chunk.append(item)
            if len(chunk) == BATCH_LIMIT:
                yield from self._run_batch(chunk, idempotent)
                chunk = []
        if chunk:
            yield from self._run_batch(chunk, idempotent)

    def batch(self, items: Iterable[BatchRequest], *, idempotent: bool = False) -> list[BatchResult]:
        return list(self.iter_batch(items, idempotent=idempotent))

    def _run_batch(self, chunk: Sequence[BatchRequest], idempotent: bool) -> list[BatchResult]:
        ids = [item.id for item in chunk]
        if len(set(ids)) != len(ids):
            raise ValueError("batch request ids must be unique")
        pending = {item.id: item for item in chunk}
        done: dict[str, BatchResult] = {}
        stop_at = self._stop_at(self.retry.deadline)
        round_no = 0
        while pending:
            round_no += 1
            resp = self.request(
                "POST",
                "/$batch",
                json_body={"requests": [item.to_json() for item in pending.values()]},
                headers={"Content-Type": "application/json"},
                idempotent=idempotent,
                deadline=max(0.001, stop_at - self._clock()),
            )
            answers = resp.body.get("responses", []) if isinstance(resp.body, dict) else []
            waits: list[float] = []
            retry_later: dict[str, BatchResult] = {}
            for answer in answers:
                item_id = str(answer.get("id"))
                if item_id not in pending:
                    continue
                status = int(answer.get("status", 0))
                item_headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
                request_id = item_headers.get("request-id") or resp.request_id
                body = answer.get("body")
                result = BatchResult(item_id, status, body, request_id)
                if status >= 400:
                    result.error = error_from_response(status, body, request_id=request_id)
                if status in RETRY_STATUSES:
                    self.throttled += status == 429
                    wait = self.retry.retry_after(item_headers.get("retry-after"))
                    waits.append(self.retry.backoff(round_no) if wait is None else wait)
                    retry_later[item_id] = result
                else:
                    done[item_id] = result
                    del pending[item_id]
            missing = [i for i in pending if i not in retry_later]
            for item_id in missing:  # Graph left an item unanswered: report it, do not guess
                done[item_id] = BatchResult(
                    item_id, 0, None, resp.request_id,
                    GraphError("Microsoft Graph returned no answer for this item of the batch. Try again.",
                               request_id=resp.request_id),
                )
                del pending[item_id]
            if not pending:
                break
            wait = max(waits) if waits else self.retry.backoff(round_no)
            if round_no >= self.retry.max_attempts or self._clock() + wait >= stop_at:
                for item_id, result in retry_later.items():
                    cls = Throttled if result.status == 429 else GraphUnavailable
                    result.error = cls(
                        f"Microsoft Graph kept answering {result.status} to this item after {round_no} "
                        f"attempts. {cls.hint}",
                        status=result.status,
                        code=result.error.code if result.error else None,
                        request_id=result.request_id,
                    )
                    done[item_id] = result
                break
            log.info("graph $batch: %d item(s) throttled, retrying in %.2f s", len(pending), wait)
            self._sleep(wait)
        return [done[i] for i in ids]

    # -- helpers --------------------------------------------------------------------------------------------

    def _url(self, path: str, params: Mapping[str, str | int] | None) -> str:
        if _is_absolute(path):
            self._check_same_origin(path)
            url = path
        else:
            url = self.base_url + ("" if path.startswith("/") else "/") + path
        if params:
            query = urlencode({k: str(v) for k, v in params.items()}, quote_via=quote, safe="$,'()")
            url += ("&" if "?" in url else "?") + query
        return url

    def owns(self, url: str) -> bool:
        """Whether `url` (a cursor, a nextLink) points under our Graph base URL."""
        base, target = urlsplit(self.base_url), urlsplit(url)
        return (target.scheme, target.netloc) == (base.scheme, base.netloc) and (
            target.path == base.path or target.path.startswith(base.path + "/")
        )

    def _check_same_origin(self, url: str) -> None:
        """A cursor or nextLink must point at our Graph base URL: never send the token anywhere else."""
        if not self.owns(url):
            raise ValueError(f"refusing to follow a link outside {self.base_url}")

    def absolute(self, path: str) -> str:
        """An absolute Graph URL for an object path, as `@odata.bind` / `@odata.id` want it."""
        return self.base_url + path


def needs_eventual_consistency(url: str) -> bool:
    """Whether Graph requires `ConsistencyLevel: eventual` for this query ($search, $count, endsWith/ne/not)."""
    query = urlsplit(url).query
    if not query and "/$count" not in url:
        return False
    decoded = unquote(query)
    if "/$count" in urlsplit(url).path or "$search=" in decoded or "$count=true" in decoded.lower():
        return True
    for part in decoded.split("&"):
        if part.startswith("$filter="):
            return bool(_ADVANCED_FILTER.search(_strip_literals(part[len("$filter="):])))
    return False


def _strip_literals(expr: str) -> str:
    """Remove quoted literals so user text such as 'not me' cannot look like an operator."""
    return re.sub(r"'(?:[^']|'')*'", "''", expr)


def _is_absolute(path: str) -> bool:
    return path.startswith(("https://", "http://"))


def _short(url: str) -> str:
    """The path of a URL, for messages and logs (no query: it may hold user input)."""
    return urlsplit(url).path


def _parse_body(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    ctype = resp.headers.get("Content-Type", "")
    if "json" in ctype:
        try:
            return resp.json()
        except ValueError:
            return resp.text
    return resp.text


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly never reached the server (connect refused / connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, NewConnectionError)
    return False
