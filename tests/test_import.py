"""The user import against the emulator: full and incremental rounds, scope, profile fields, removals, groups."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.models import Datasource
from emulator.server import EmulatorHandle
from jobs.models import TaskRun
from office365.importer import import_for
from tests.import_helpers import authorized_datasource, control, graph_users, imported_users, run_import
from tests.o365_helpers import emulator, emulator_env  # noqa: F401


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:  # noqa: F811
    return emulator_env(emulator)


@pytest.fixture
def datasource(app: Flask, admin_client: FlaskClient, emulator: EmulatorHandle) -> Datasource:  # noqa: F811
    app.config["IMPORT_PAGE_SIZE"] = 10
    return authorized_datasource(admin_client, emulator)


def test_first_run_imports_every_user_then_a_second_run_reads_only_changes(
        datasource: Datasource, emulator: EmulatorHandle) -> None:  # noqa: F811
    source = graph_users(emulator)
    run = run_import(datasource)
    assert run.status == TaskRun.SUCCEEDED, run.error
    local = imported_users(datasource)
    assert set(local) == set(source)
    assert run.created == len(source) and run.pages >= len(source) // 10
    adele = next(u for u in local.values() if u.email == "adele.vance@contoso.example")
    assert adele.display_name == "Adele Vance" and adele.role_names == {"User"} and adele.active
    imp = import_for(datasource)
    assert imp.users_delta and imp.phase == "idle" and imp.users_next is None

    control(emulator, "PATCH", f"users/{adele.object_id}", {"displayName": "Adele V."})
    new = control(emulator, "POST", "users", {"userPrincipalName": "new.person@contoso.example",
                                              "displayName": "New Person", "mailNickname": "new.person",
                                              "accountEnabled": True})
    again = run_import(datasource)
    assert again.status == TaskRun.SUCCEEDED, again.error
    assert (again.created, again.updated) == (1, 1)
    assert again.graph_requests <= 3 and again.summary["names"]["updated"] == ["Adele V."]
    local = imported_users(datasource)
    assert local[adele.object_id].display_name == "Adele V." and local[new["id"]].email == "new.person@contoso.example"
    assert len(local) == len(source) + 1
