"""Fixtures for the core tests: the two kinds of pending flow (an SSO sign-in, a datasource's authorization), each
with a realistic payload and the callback that takes it, so one suite checks the store for both users."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from core.pending_flows import PendingFlows
from datasources import authorization
from sso import signin


@dataclass(frozen=True)
class FlowKind:
    """One user of the pending-flow store: its store, how a callback's `state` becomes its key, a payload holding
    a secret, and its callback (with the client allowed to call it) and what that callback says when it finds
    nothing."""

    store: PendingFlows
    key: Callable[[str], str]
    payload: Callable[[str], dict[str, Any]]
    client: FlaskClient
    callback: Callable[[FlaskClient, str], TestResponse]
    nothing_found: tuple[int, str]


def _sign_in_payload(secret: str) -> dict[str, Any]:
    return {"provider_id": 1, "nonce": "nonce-" + secret, "verifier": secret, "binding": "binding-hash",
            "next_path": "/after", "redirect_uri": "http://localhost/sso/callback"}


def _authorization_payload(secret: str) -> dict[str, Any]:
    return {"datasource_id": 1, "intent": authorization.AUTHORIZE,
            "flow": {"state": "msal-state", "code_verifier": secret, "nonce": "nonce-" + secret,
                     "auth_uri": "https://login.example/authorize"}}


@pytest.fixture(params=["sso_sign_in", "datasource_authorization"])
def flow_kind(request: pytest.FixtureRequest, app: Flask) -> FlowKind:
    if request.param == "sso_sign_in":
        return FlowKind(signin.PENDING, lambda state: state, _sign_in_payload, app.test_client(),
                        lambda client, state: client.get(f"/sso/callback?state={state}&code=a-code"),
                        (400, "This sign-in link is unknown, expired or was already used"))
    admin_id = request.getfixturevalue("admin_user").id  # read here: the race test's threads call `key`
    client = request.getfixturevalue("admin_client")
    return FlowKind(authorization.PENDING, lambda state: authorization.pending_key(admin_id, state),
                    _authorization_payload, client,
                    lambda client, state: client.get(f"/admin/datasources/authorize/callback?state={state}&code=c"),
                    (200, "This authorization has expired or was already used"))
