"""Reading delta pages one ahead on a thread, so Graph and the database work at the same time.

The reader has its own app context, database session and Graph client (built by `client_factory` in that
thread): a token refresh it triggers is committed in its own session, never in the importer's page transaction.
Reading ahead never moves the stored cursor: only a processed page's commit does, so a crash still resumes at the
first unprocessed page.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from flask import current_app

from core.extensions import db
from office365.graph import GraphClient

_END = object()
READ_AHEAD = 16  # pages: the reader goes on while the importer merges a chunk (about 1 MB each at 999 users)


class PrefetchingReader:
    def __init__(self, client_factory: Callable[[], GraphClient], page_size: int) -> None:
        self.client_factory = client_factory
        self.page_size = page_size
        self.requests_sent = 0  # by every reader thread so far

    def pages(self, url: str, params: dict[str, str] | None) -> Iterator[tuple[dict[str, Any], bytes]]:
        """Each page's body, parsed and as received."""
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        pipe: queue.Queue[Any] = queue.Queue(maxsize=READ_AHEAD)
        stop = threading.Event()
        base = self.requests_sent

        def read() -> None:
            with app.app_context():
                client = None
                try:
                    client = self.client_factory()
                    next_url, next_params = url, params
                    while next_url and not stop.is_set():
                        resp = client.request("GET", next_url, params=next_params,
                                              headers={"Prefer": f"odata.maxpagesize={self.page_size}"})
                        body = resp.body if isinstance(resp.body, dict) else {}
                        self.requests_sent = base + client.requests_sent
                        _put(pipe, (body, resp.content), stop)
                        next_url, next_params = body.get("@odata.nextLink"), None
                    _put(pipe, _END, stop)
                except BaseException as exc:  # noqa: BLE001 - handed to the importer's thread
                    if client is not None:
                        self.requests_sent = base + client.requests_sent
                    _put(pipe, exc, stop)
                finally:
                    if client is not None:
                        client.close()
                    db.session.remove()

        thread = threading.Thread(target=read, name="delta-reader", daemon=True)
        thread.start()
        try:
            while True:
                item = pipe.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    pipe.get(timeout=0.05)
            thread.join()


def _put(pipe: queue.Queue[Any], item: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            pipe.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
