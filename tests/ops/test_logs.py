"""Logs: LOG_FORMAT=json lines carry the request's fields; request ids are echoed (trusted only behind a proxy);
and a whole sign-in, datasource authorization, import and API call log no secret, even at DEBUG."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.crypto import secret_box
from core.extensions import db
from emulator.server import EmulatorHandle
from observability.logs import JsonFormatter
from tests.conftest import ADMIN_PASSWORD, _build_app, sign_in
from tests.imports.helpers import run_import
from tests.o365_helpers import (
    callback_path,
    create_datasource,
    datasource_named,
    emulator_env,
    sign_in_at_microsoft,
    start_authorization,
)
from tests.sso_helpers import add_office365_provider, enable_sso, start_sign_in

ADELE = "adele.vance@contoso.example"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
# The emulator runs in this process (its werkzeug server and its own modules log too): it is Microsoft's side.
NOT_OURS = ("emulator", "werkzeug")


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(record)) for record in caplog.records]


def test_json_access_line_has_the_request_fields_and_a_generated_id(
        client: FlaskClient, admin_user, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="gateway.access")
    assert sign_in(client, admin_user.email, ADMIN_PASSWORD).status_code == 302
    caplog.clear()
    response = client.get("/sessions", headers={"X-Request-ID": "from-a-stranger"})
    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # no proxy is trusted: the caller's id is not taken
    (line,) = [line for line in _lines(caplog) if line["logger"] == "gateway.access"]
    assert line["request_id"] == request_id and line["user_id"] == str(admin_user.id)
    assert line["route"] == "/sessions" and line["method"] == "GET" and line["status"] == 200
    assert line["level"] == "INFO" and line["time"].endswith("Z") and 0 <= line["duration"] < 60


def test_behind_a_trusted_proxy_its_request_id_is_kept(database_url: str, tmp_path,  # type: ignore[no-untyped-def]
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from tests.conftest import TEST_FERNET_KEY

    app = _build_app(database_url, tmp_path, ENV={
        "DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key-0123456789-abcdefghijkl",
        "TOKEN_ENCRYPTION_KEYS": TEST_FERNET_KEY, "TRUSTED_PROXY_HOPS": "1", "LOG_FORMAT": "json"})
    assert app.config["LOG_FORMAT"] == "json"
    caplog.set_level(logging.INFO, logger="gateway.access")
    client = app.test_client()
    kept = client.get("/healthz", headers={"X-Request-ID": "nginx-4f2a.7"})
    assert kept.headers["X-Request-ID"] == "nginx-4f2a.7"
    unsafe = client.get("/healthz", headers={"X-Request-ID": "a b\"c"})  # not a token: replaced
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["X-Request-ID"])
    routes = {line["request_id"]: line["route"] for line in _lines(caplog) if line["logger"] == "gateway.access"}
    assert routes["nginx-4f2a.7"] == "/healthz"
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app_env(sso_emulator: EmulatorHandle) -> dict[str, str]:
    return {**emulator_env(sso_emulator), "LOG_FORMAT": "json"}


def _code(location: str) -> str:
    return parse_qs(urlsplit(location).query)["code"][0]


def _cache_secrets(cache_json: str) -> set[str]:
    """Every token MSAL keeps for the datasource (access, refresh, ID tokens)."""
    cache = json.loads(cache_json)
    return {entry["secret"] for section in cache.values() if isinstance(section, dict)
            for entry in section.values() if isinstance(entry, dict) and entry.get("secret")}


def test_no_secret_is_logged_through_sign_in_authorize_import_and_api(
        app: Flask, admin_client: FlaskClient, admin_user, sso_emulator: EmulatorHandle,  # type: ignore[no-untyped-def]
        caplog: pytest.LogCaptureFixture) -> None:
    from core.api_keys import ApiKey

    caplog.set_level(logging.DEBUG)
    secrets = {sso_emulator.config["client_secret"], ADMIN_PASSWORD, app.config["SECRET_KEY"],
               *app.config["TOKEN_ENCRYPTION_KEYS"], admin_client.get_cookie("gw_session").value}
    # Authorize a datasource at the emulator (the admin consents), with single sign-on on it.
    create_datasource(admin_client, sso=True)
    datasource = datasource_named()
    authorized = callback_path(sign_in_at_microsoft(sso_emulator, start_authorization(admin_client, datasource),
                                                    "admin@contoso.example"))
    secrets.add(_code(authorized))
    assert "Connection test succeeded" in admin_client.get(authorized).get_data(as_text=True)
    datasource = datasource_named()
    secrets |= _cache_secrets(secret_box().decrypt(datasource.token_cache))
    # A user signs in with Office 365 and is let through forward auth.
    enable_sso(create_users=True)
    add_office365_provider(datasource)
    user_client = app.test_client()
    answer = sign_in_at_microsoft(sso_emulator, start_sign_in(user_client, "contoso"), ADELE, org_consent=False)
    secrets.add(_code(answer.headers["Location"]))
    signed_in = user_client.get(callback_path_for_sso(answer.headers["Location"]))
    assert signed_in.status_code == 302
    secrets.add(user_client.get_cookie("gw_session").value)
    assert user_client.get("/auth/verify").status_code == 200
    # The import reads the directory through Graph with the datasource's tokens.
    assert run_import(datasource).status == "succeeded"
    secrets |= _cache_secrets(secret_box().decrypt(datasource_named().token_cache))
    # An API key calls the JSON API.
    row, key = ApiKey.issue(admin_user, "script", expires_at=None, created_by=admin_user.email)
    db.session.add(row)
    db.session.commit()
    secrets.add(key)
    assert app.test_client().get("/api/v1/datasources", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    ours = [record for record in caplog.records if not record.name.startswith(NOT_OURS)]
    assert any(r.name == "gateway.access" for r in ours) and any(r.levelno == logging.DEBUG for r in ours)
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in ours]
    text = "\n".join(lines)
    leaked = [(value[:8] + "...", line[:160]) for value in secrets if value for line in lines if value in line]
    assert not leaked, f"secrets in the logs: {leaked}"
    assert not JWT.search(text), JWT.search(text)


def callback_path_for_sso(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/sso/callback", location
    return f"{parts.path}?{parts.query}"
