"""OpenTelemetry tracing: off by default, on with the standard `OTEL_*` variables (core.config decides).

When on, Flask, requests (so Graph and Entra calls carry a W3C `traceparent`), SQLAlchemy and Redis are
instrumented and spans go to the OTLP exporter (http/protobuf; `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`
and the other standard variables are read by the SDK). Forward auth hands its trace context to the upstream app
in the answer's `traceparent` header (nginx: `auth_request_set $traceparent $upstream_http_traceparent;`).
The WSGI fast path of /auth/verify never reaches Flask: it records its own server span when it answers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)
EXCLUDED_URLS = "healthz,readyz,metrics,static"

_tracer: Any = None
_instrumentors: list[Any] = []


def enabled() -> bool:
    return _tracer is not None


def context_headers() -> list[tuple[str, str]]:
    """`traceparent` (and `tracestate`) of the current span, for the upstream app; none when tracing is off."""
    if _tracer is None:
        return []
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


def fast_path_span(environ: dict[str, Any], started_ns: int) -> list[tuple[str, str]]:
    """Record the span of an /auth/verify answered by the fast path (parent: the proxy's traceparent, if any);
    returns the headers that hand its context on."""
    if _tracer is None:
        return []
    from opentelemetry import propagate, trace
    from opentelemetry.instrumentation.wsgi import wsgi_getter

    parent = propagate.extract(environ, getter=wsgi_getter)
    span = _tracer.start_span("GET /auth/verify", context=parent, kind=trace.SpanKind.SERVER,
                              start_time=started_ns, attributes={"http.request.method": "GET",
                                                                 "http.route": "/auth/verify",
                                                                 "http.response.status_code": 200,
                                                                 "gateway.fast_path": True})
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    span.end()
    return list(carrier.items())


def now_ns() -> int:
    return time.time_ns()


def _provider_from_environment() -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "office365-gateway"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def install(app: Flask, provider: Any = None) -> None:
    """Instrument the app and the libraries when TRACING_ENABLED (or when given a provider: tests, embedding)."""
    global _tracer
    if provider is None:
        if not app.config.get("TRACING_ENABLED"):
            return
        from opentelemetry import trace

        provider = _provider_from_environment()
        trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # Flask-SQLAlchemy made its engines in init_app: instrument those.
    extension = app.extensions["sqlalchemy"]
    with app.app_context():
        engines = list(extension.engines.values())
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider, excluded_urls=EXCLUDED_URLS)
    # The SQLAlchemy instrumentation declares "< 2.1" but its engine events are those of 2.1 too (tests/ops/
    # test_tracing.py checks the database spans): its version check would otherwise turn it off silently.
    for instrumentor, options in ((RequestsInstrumentor(), {}), (RedisInstrumentor(), {}),
                                  (SQLAlchemyInstrumentor(), {"engines": engines, "skip_dep_check": True})):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider, **options)
            _instrumentors.append(instrumentor)
    _tracer = provider.get_tracer("gateway")
    log.info("tracing on: spans exported over OTLP")


def uninstall() -> None:
    """Undo the library instrumentation (tests that turn tracing on for one app)."""
    global _tracer
    while _instrumentors:
        _instrumentors.pop().uninstrument()
    _tracer = None
