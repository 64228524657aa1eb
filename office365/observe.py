"""Observers of the Microsoft client: the app wires its metrics here, so office365/ needs no Flask nor metrics
library. Each Graph HTTP request and each refresh-token redemption is reported to every observer registered."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

log = logging.getLogger(__name__)

# (operation, status: HTTP status or "error", seconds, retried: this request repeats an earlier attempt)
GraphObserver = Callable[[str, str, float, bool], None]
RefreshObserver = Callable[[str], None]  # outcome: success | failure

_graph_observers: list[GraphObserver] = []
_refresh_observers: list[RefreshObserver] = []
_ID_SEGMENT = re.compile(r"^(?:[0-9a-fA-F-]{32,36}|.*@.*|\d+|.*\(.*\))$")


def on_graph_request(observer: GraphObserver) -> None:
    if observer not in _graph_observers:
        _graph_observers.append(observer)


def on_token_refresh(observer: RefreshObserver) -> None:
    if observer not in _refresh_observers:
        _refresh_observers.append(observer)


def operation_name(method: str, path: str) -> str:
    """`GET /users/{id}/memberOf`: the method and the path with ids, UPNs and keys replaced, a bounded label."""
    segments = [("{id}" if _ID_SEGMENT.match(part) else part) for part in path.split("?", 1)[0].split("/") if part]
    return f"{method} /{'/'.join(segments[:4])}"


def graph_request(operation: str, status: str, seconds: float, retried: bool) -> None:
    for observer in _graph_observers:
        try:
            observer(operation, status, seconds, retried)
        except Exception:  # noqa: BLE001 - an observer never breaks a Graph call
            log.warning("graph observer failed", exc_info=True)


def token_refresh(outcome: str) -> None:
    for observer in _refresh_observers:
        try:
            observer(outcome)
        except Exception:  # noqa: BLE001 - an observer never breaks a token redemption
            log.warning("token refresh observer failed", exc_info=True)
