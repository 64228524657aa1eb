"""Issue 15, point 3: a change in Entra reaches the person's live gateway sessions at the next live round — a
removal from a group a route needs denies the next /auth/verify (view and fast path), a disabled user and revoked
sign-in sessions end the sessions — on both session stores and both databases, against the tenant emulator."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.extensions import db
from core.models import AuditEvent, Datasource, User
from emulator.server import EmulatorHandle
from imports.state import import_for
from live.models import LiveAccess
from policies import service
from tests.conftest import ADMIN_EMAIL
from tests.live.conftest import control, run_live_round, turn_on_live_access
from tests.sso_helpers import microsoft_sign_in, stored_identity

ADELE = "adele.vance@contoso.example"
URL = {"X-Original-URL": "https://app.example.com/reports/q3", "X-Original-Method": "GET"}


def verify(client: FlaskClient) -> Any:
    return client.get("/auth/verify", headers=URL)


@pytest.fixture
def adele(app: Flask, contoso: Datasource, sso_emulator: EmulatorHandle) -> tuple[FlaskClient, User, str]:
    """Adele signed in through Office 365; the access rules let app.example.com in for one of her groups."""
    browser = app.test_client()
    assert microsoft_sign_in(browser, sso_emulator, "contoso", ADELE).status_code == 302
    group = stored_identity(browser)["groups"][0]
    service.save({"rules": [{"name": "Reports", "host": "app.example.com",
                             "criteria": {"groups_any": [{"id": group, "name": "Reports readers"}]}}]},
                 actor=ADMIN_EMAIL)
    user = db.session.scalars(select(User).filter_by(email=ADELE)).one()
    return browser, user, group


@pytest.mark.parametrize("change", ["group removal", "disable", "revoke"])
def test_an_entra_change_reaches_the_live_session_at_the_next_round(
        app: Flask, contoso: Datasource, sso_emulator: EmulatorHandle, adele: tuple[FlaskClient, User, str],
        change: str) -> None:
    browser, user, group = adele
    user_import = import_for(contoso)
    user_import.profile_fields = ["display_name", "email"]  # the import leaves `active` alone: live access acts
    db.session.commit()
    turn_on_live_access(contoso)
    first = run_live_round(contoso, "poll")  # the first round reads the directory whole
    assert first is not None and first.status == "succeeded", first and first.error
    for _ in range(2):  # the view signs, the fast path repeats
        assert verify(browser).status_code == 200
    quiet = run_live_round(contoso)
    assert quiet is None  # nothing changed: the round leaves no run behind

    if change == "group removal":
        control(sso_emulator, "DELETE", f"groups/{group}/members/{user.object_id}")
    elif change == "disable":
        control(sso_emulator, "PATCH", f"users/{user.object_id}", {"accountEnabled": False})
    else:
        control(sso_emulator, "POST", "revoke", {"user": user.object_id})
    run = run_live_round(contoso)
    assert run is not None and run.status == "succeeded", run and run.error
    live = db.session.scalar(select(LiveAccess).where(LiveAccess.datasource_id == contoso.id))
    assert live is not None and live.lag_seconds is not None and live.last_round_at is not None

    for _ in range(2):  # and never an older cached answer from the fast path
        answer = verify(browser)
        if change == "group removal":
            assert answer.status_code == 403
            assert answer.get_json()["error"]["message"] == "not in group Reports readers"
        else:
            assert answer.status_code == 401  # the session is gone
    if change == "group removal":
        identity = stored_identity(browser)
        assert group not in identity["groups"] and identity["rev"] == 1
        assert run.summary["live"]["refreshed"] == 1 and live.sessions_refreshed == 1
    else:
        assert run.summary["live"]["ended"] >= 1 and live.sessions_ended >= 1
        reason = "disabled in Microsoft Entra ID" if change == "disable" else \
            "sign-in sessions revoked in Microsoft Entra ID"
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.sessions_end",
                                                          AuditEvent.target == ADELE)) is not None, reason
