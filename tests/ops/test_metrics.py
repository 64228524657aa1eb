"""Metrics through the test client: /metrics is guarded by METRICS_TOKEN (404 unset, 401 wrong), forward-auth
decisions and sign-ins are counted by outcome, and the state read at scrape time is there."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import USER_EMAIL, USER_PASSWORD, sign_in

TOKEN = "metrics-token-0123456789"


@pytest.fixture
def app_env() -> dict[str, str]:
    return {"METRICS_TOKEN": TOKEN}


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_the_token(app: Flask, client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer metrics-token-wrong-guess"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    app.config["METRICS_TOKEN"] = None  # not configured: not served at all
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_forward_auth_and_sign_ins_are_counted(client: FlaskClient, plain_user) -> None:  # type: ignore[no-untyped-def]
    before = scrape(client)
    assert client.get("/auth/verify").status_code == 401
    assert sign_in(client, USER_EMAIL, "wrong-password").status_code == 200
    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    for _ in range(3):  # the view signs, then the WSGI fast path answers
        assert client.get("/auth/verify?allowed_domains=example.com").status_code == 200
    assert client.get("/auth/verify?allowed_emails=someone@else.org").status_code == 403
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("gateway_forward_auth_decisions_total", outcome="not_signed_in", policy="none") == 1
    assert delta("gateway_forward_auth_decisions_total", outcome="allowed", policy="query") == 3
    assert delta("gateway_forward_auth_decisions_total", outcome="denied", policy="query") == 1
    assert delta("gateway_forward_auth_duration_seconds_count") == 5
    assert delta("gateway_sign_ins_total", provider="local", outcome="failure") == 1
    assert delta("gateway_sign_ins_total", provider="local", outcome="success") == 1
    assert value(after, "gateway_active_sessions") == 1


def test_state_is_read_at_scrape_time(client: FlaskClient) -> None:
    from core.extensions import db
    from core.models import Datasource, utcnow

    db.session.add(Datasource(name="Contoso 365", status=Datasource.READY, tenant_id="t", authorized_at=utcnow()))
    db.session.commit()
    samples = scrape(client)
    assert value(samples, "gateway_datasource_status", datasource="Contoso 365", status="ready") == 1
    assert value(samples, "gateway_datasource_status", datasource="Contoso 365", status="incomplete") == 0
    assert 181 < value(samples, "gateway_datasource_reauthorization_due_days", datasource="Contoso 365") <= 182
    assert value(samples, "gateway_active_sessions") == 0
