"""A scripted local HTTP server answering in Graph's exact shapes, for the Graph client tests."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from office365.graph import RetryPolicy

Handler = Callable[[Request], Response | None]


def graph_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    h = {"request-id": str(uuid.uuid4()), "client-request-id": "echo"}
    h.update(headers or {})
    return Response(
        json.dumps(body), status=status, headers=h,
        content_type="application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
                     "charset=utf-8",
    )


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    rid = str(uuid.uuid4())
    body = {"error": {"code": code, "message": message,
                      "innerError": {"date": "2026-11-27T23:00:00", "request-id": rid, "client-request-id": "x"}}}
    h = {"request-id": rid}
    h.update(headers or {})
    return graph_json(body, status, h)


def no_content() -> Response:
    return Response(status=204, headers={"request-id": str(uuid.uuid4())})


def drop_connection(request: Request) -> None:
    """Close the socket without answering (a dropped connection)."""
    sock: socket.socket = request.environ["werkzeug.socket"]
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@dataclass
class Seen:
    method: str
    path: str
    args: dict[str, str]
    headers: dict[str, str]
    body: Any


class ScriptedGraph:
    """Answers with the queued handlers in order (each may return None to drop the connection)."""

    def __init__(self) -> None:
        self.queue: list[Handler | Response] = []
        self.default: Handler | None = None
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1.0"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def script(self, *steps: Handler | Response) -> None:
        self.queue.extend(steps)

    def wsgi(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        raw = request.get_data()
        with self.lock:
            self.seen.append(Seen(
                request.method, request.path, dict(request.args), dict(request.headers),
                json.loads(raw) if raw else None,
            ))
            step: Handler | Response | None = self.queue.pop(0) if self.queue else self.default
        if step is None:
            response = graph_error(500, "unscripted", f"no scripted answer for {request.method} {request.path}")
        elif isinstance(step, Response):
            response = step
        else:
            result = step(request)
            if result is None:
                drop_connection(request)
                return []
            response = result
        return response(environ, start_response)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Sleeps:
    """Records waits and really sleeps them (they are tiny in these tests)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


FAST = RetryPolicy(max_attempts=5, backoff_base=0.01, backoff_cap=0.05, retry_after_cap=0.2, deadline=5.0)


