"""Tracing with the SDK's in-memory exporter: one Office 365 sign-in is one trace holding the callback, the token
request (whose traceparent reaches Entra, here the emulator) and the database; forward auth hands its trace
context to the upstream app, from the view and from the WSGI fast path. Off unless OTEL_* variables ask."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from core.config import ConfigError, load_config
from emulator.server import EmulatorHandle
from observability import tracing
from tests.o365_helpers import emulator_env
from tests.sso_helpers import add_office365_provider, enable_sso, microsoft_sign_in, ready_datasource

ADELE = "adele.vance@contoso.example"


@pytest.fixture
def app_env(sso_emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(sso_emulator)


@pytest.fixture
def spans(app: Flask) -> Iterator[InMemorySpanExporter]:
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(app, provider)
    yield exporter
    tracing.uninstall()
    FlaskInstrumentor().uninstrument_app(app)


@pytest.fixture
def entra_headers(sso_emulator: EmulatorHandle) -> list[dict[str, str]]:
    """The headers of every request the emulator (Entra and Graph) receives."""
    seen: list[dict[str, str]] = []
    inner = sso_emulator.app.wsgi_app

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append({"path": environ.get("PATH_INFO", ""), "traceparent": environ.get("HTTP_TRACEPARENT", "")})
        return inner(environ, start_response)

    sso_emulator.app.wsgi_app = recording  # type: ignore[method-assign]
    return seen


def test_one_sign_in_is_one_trace_with_callback_token_request_and_database(
        app: Flask, client: FlaskClient, sso_emulator: EmulatorHandle, spans: InMemorySpanExporter,
        entra_headers: list[dict[str, str]]) -> None:
    enable_sso(create_users=True)
    add_office365_provider(ready_datasource(sso_emulator))
    spans.clear()
    assert microsoft_sign_in(client, sso_emulator, "contoso", ADELE).status_code == 302
    finished = spans.get_finished_spans()
    (callback,) = [s for s in finished
                   if s.kind == SpanKind.SERVER and s.attributes.get("http.route") == "/sso/callback"]
    trace = [s for s in finished if s.context.trace_id == callback.context.trace_id]
    token_calls = [s for s in trace if s.kind == SpanKind.CLIENT and str(
        s.attributes.get("url.full") or s.attributes.get("http.url") or "").endswith("/oauth2/v2.0/token")]
    database = [s for s in trace if s.attributes.get("db.system") or s.attributes.get("db.system.name")]
    assert len(token_calls) == 1, [s.name for s in trace]
    assert database, [s.name for s in trace]
    assert all(s.parent is not None for s in trace if s is not callback)  # one trace, rooted at the callback
    # The token request carried the trace to Entra.
    (token_request,) = [h for h in entra_headers if h["path"].endswith("/oauth2/v2.0/token")]
    assert token_request["traceparent"].split("-")[1] == format(callback.context.trace_id, "032x")


def test_forward_auth_hands_the_trace_to_the_upstream(client: FlaskClient, plain_user,  # type: ignore[no-untyped-def]
                                                     spans: InMemorySpanExporter) -> None:
    from tests.conftest import USER_EMAIL, USER_PASSWORD, sign_in

    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    spans.clear()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for _ in range(2):  # the Flask view, then the fast path
        answer = client.get("/auth/verify", headers={"traceparent": parent})
        assert answer.status_code == 200
        version, trace_id, span_id, _flags = answer.headers["traceparent"].split("-")
        assert trace_id == "0af7651916cd43dd8448eb211c80319c" and span_id != "b7ad6b7169203331"
    servers = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert len(servers) == 2 and [bool(s.attributes.get("gateway.fast_path")) for s in servers] == [False, True]


def test_tracing_is_off_unless_otel_variables_ask(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def config(**env: str) -> dict[str, Any]:
        return load_config(env, tmp_path)

    assert config()["TRACING_ENABLED"] is False
    assert config(OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318")["TRACING_ENABLED"] is True
    assert config(OTEL_TRACES_EXPORTER="otlp")["TRACING_ENABLED"] is True
    assert config(OTEL_TRACES_EXPORTER="none", OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318")["TRACING_ENABLED"] is False
    assert config(OTEL_SDK_DISABLED="true", OTEL_TRACES_EXPORTER="otlp")["TRACING_ENABLED"] is False
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        config(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        config(OTEL_TRACES_EXPORTER="zipkin")
