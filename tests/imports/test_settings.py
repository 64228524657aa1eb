"""The import-settings service (imports.settings), called directly as any caller besides the admin page would:
its checks refuse with the setting at fault and store nothing; a save resolves the groups in Office 365, binds
local groups, audits, and commits (a rollback afterwards loses nothing)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import AuditEvent, Datasource, Group
from emulator.server import EmulatorHandle
from imports.settings import ImportSettings, SettingsRefused, current_settings, save_settings
from imports.state import import_for
from tests.imports.helpers import authorized_datasource, group_members_in_emulator

DEFAULTS = ImportSettings(scope="all", source_groups="", default_role="User",
                          profile_fields=["display_name", "email", "active"], on_missing="nothing",
                          removal_guard_percent=10, bindings="", override_members=False)


@pytest.fixture
def datasource(app: Flask, admin_client: FlaskClient, emulator: EmulatorHandle) -> Datasource:
    return authorized_datasource(admin_client, emulator)


@pytest.mark.parametrize(("change", "field"), [
    ({"bindings": "Sales team U.S. Sales"}, "bindings"),
    ({"source_groups": "No such group"}, "source_groups"),
    ({"scope": "groups"}, "source_groups"),
    ({"removal_guard_percent": 101}, "removal_guard_percent"),
    ({"on_missing": "explode"}, "on_missing"),
    ({"default_role": "Overlord"}, "default_role"),
    ({"profile_fields": ["password"]}, "profile_fields"),
])
def test_settings_refused_name_the_field_and_store_nothing(datasource: Datasource, change: dict,
                                                           field: str) -> None:
    user_import = import_for(datasource)
    db.session.commit()
    with pytest.raises(SettingsRefused) as refused:
        save_settings(user_import, datasource, replace(DEFAULTS, **change), actor="admin@example.com")
    assert refused.value.field == field and str(refused.value)
    db.session.rollback()
    assert current_settings(import_for(datasource), datasource) == DEFAULTS
    assert db.session.scalar(db.select(AuditEvent).filter_by(action="import.settings")) is None


def test_a_save_resolves_groups_binds_audits_and_commits(datasource: Datasource, emulator: EmulatorHandle) -> None:
    sales_id, _ = group_members_in_emulator(emulator, "U.S. Sales")
    chosen = replace(DEFAULTS, scope="groups", source_groups="Legal", on_missing="disable",
                     bindings="Sales team = U.S. Sales", override_members=True)
    save_settings(import_for(datasource), datasource, chosen, actor="admin@example.com")
    db.session.rollback()  # what the service saved was committed by the service

    user_import = import_for(datasource)
    assert [g["name"] for g in user_import.source_groups] == ["Legal"]
    assert user_import.updated_by == "admin@example.com"
    team = db.session.scalars(db.select(Group).filter_by(name="Sales team")).one()
    assert (team.datasource_id, team.source_group_id, team.override_members) == (datasource.id, sales_id, True)
    assert current_settings(user_import, datasource) == replace(chosen, bindings="Sales team = U.S. Sales")
    event = db.session.scalar(db.select(AuditEvent).filter_by(action="import.settings"))
    assert event is not None and event.actor == "admin@example.com"
    assert event.detail["bindings"] == ["Sales team = U.S. Sales"]

    save_settings(user_import, datasource, DEFAULTS, actor="admin@example.com")  # unbinding
    db.session.rollback()
    assert db.session.scalars(db.select(Group).filter_by(name="Sales team")).one().source_group_id is None
