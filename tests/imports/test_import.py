"""The user import against the emulator: full and incremental rounds, scope, profile fields, removals, groups."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import Datasource, Group, User
from emulator.server import EmulatorHandle
from imports.state import import_for
from jobs.models import TaskRun
from tests.conftest import csrf_token, make_user
from tests.imports.helpers import (
    authorized_datasource,
    control,
    drain,
    graph_users,
    group_members_in_emulator,
    imported_users,
    run_import,
    save_import_settings,
    use_test_queue,
)


@pytest.fixture
def datasource(app: Flask, admin_client: FlaskClient, emulator: EmulatorHandle) -> Datasource:
    app.config["IMPORT_PAGE_SIZE"] = 10
    return authorized_datasource(admin_client, emulator)


def test_first_run_imports_every_user_then_a_second_run_reads_only_changes(
        datasource: Datasource, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    source = graph_users(emulator)
    run = run_import(datasource)
    assert run.status == TaskRun.SUCCEEDED, run.error
    local = imported_users(datasource)
    assert set(local) == set(source)
    assert run.created == run.processed == len(source) and run.pages >= len(source) // 10
    adele = next(u for u in local.values() if u.email == "adele.vance@contoso.example")
    assert adele.display_name == "Adele Vance" and adele.role_names == {"User"} and adele.active
    user_import = import_for(datasource)
    assert user_import.users_delta and user_import.phase == "idle" and user_import.users_next is None

    control(emulator, "PATCH", f"users/{adele.object_id}", {"displayName": "Adele V."})
    new = control(emulator, "POST", "users", {"userPrincipalName": "new.person@contoso.example",
                                              "displayName": "New Person", "mailNickname": "new.person",
                                              "accountEnabled": True})
    monkeypatch.setattr("imports.merge.REPLAY_BATCH", 1)  # a user applied twice would count as unchanged
    again = run_import(datasource)
    assert again.status == TaskRun.SUCCEEDED, again.error
    assert (again.created, again.updated, again.unchanged, again.processed) == (1, 1, 0, 2)
    assert again.graph_requests <= 3 and again.summary["names"]["updated"] == ["Adele V."]
    local = imported_users(datasource)
    assert local[adele.object_id].display_name == "Adele V." and local[new["id"]].email == "new.person@contoso.example"
    assert len(local) == len(source) + 1


def test_members_of_chosen_groups_default_role_and_a_bound_group_that_overrides_members(
        datasource: Datasource, emulator: EmulatorHandle, admin_client: FlaskClient) -> None:
    legal_id, legal = group_members_in_emulator(emulator, "Legal")
    sales_id, sales = group_members_in_emulator(emulator, "U.S. Sales")
    save_import_settings(admin_client, datasource, scope="groups", source_groups="Legal\nU.S. Sales",
                         default_role="Manage datasources", on_missing="disable", removal_guard_percent="50",
                         bindings="Sales team = U.S. Sales", override_members="y")
    user_import = import_for(datasource)
    assert {g["name"] for g in user_import.source_groups} == {"Legal", "U.S. Sales"}
    outsider = make_user("outsider@example.com", None, "User")
    team = db.session.scalars(db.select(Group).filter_by(name="Sales team")).one()
    team.members.append(outsider)
    db.session.commit()

    run = run_import(datasource)
    assert run.status == TaskRun.SUCCEEDED, run.error
    local = imported_users(datasource)
    assert set(local) == legal | sales
    assert all(u.role_names == {"Manage datasources"} for u in local.values())
    team = db.session.scalars(db.select(Group).filter_by(name="Sales team")).one()
    assert {u.object_id for u in team.members} == sales  # the outsider was taken out: override

    leaver = sorted(sales - legal)[0]
    control(emulator, "DELETE", f"groups/{sales_id}/members/{leaver}")
    run = run_import(datasource)
    assert run.status == TaskRun.SUCCEEDED, run.error
    local = imported_users(datasource)
    assert local[leaver].active is False and run.disabled == 1
    team = db.session.scalars(db.select(Group).filter_by(name="Sales team")).one()
    assert {u.object_id for u in team.members} == sales - {leaver}
    source = graph_users(emulator)
    assert all(u.active == bool(source[oid]["account_enabled"]) for oid, u in local.items() if oid != leaver)


@pytest.mark.parametrize("policy", ["nothing", "disable", "remove"])
def test_users_gone_from_the_source(datasource: Datasource, emulator: EmulatorHandle, admin_client: FlaskClient,
                                    policy: str) -> None:
    save_import_settings(admin_client, datasource, on_missing=policy)
    assert run_import(datasource).status == TaskRun.SUCCEEDED
    gone = next(u for u in imported_users(datasource).values() if u.email == "adele.vance@contoso.example")
    gone_id, gone_oid = gone.id, gone.object_id
    control(emulator, "DELETE", f"users/{gone_oid}")
    run = run_import(datasource)
    assert run.status == TaskRun.SUCCEEDED, run.error
    local = imported_users(datasource)
    if policy == "nothing":
        assert local[gone_oid].active and (run.disabled, run.removed) == (0, 0)
    elif policy == "disable":
        assert local[gone_oid].active is False and run.disabled == 1
    else:
        assert gone_oid not in local and run.removed == 1
        assert db.session.scalar(db.select(db.func.count(User.id)).where(User.id == gone_id)) == 0


def test_removal_guard_waits_for_an_administrator_then_applies(
        datasource: Datasource, emulator: EmulatorHandle, admin_client: FlaskClient, app: Flask,
        tmp_path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    huey = use_test_queue(app, tmp_path, database_url)
    save_import_settings(admin_client, datasource, on_missing="disable", removal_guard_percent="10")
    assert run_import(datasource).status == TaskRun.SUCCEEDED
    victims = sorted(u.object_id for u in imported_users(datasource).values()
                     if u.email != "admin@contoso.example")[:6]  # 6 of 50: more than 10%
    for oid in victims:
        control(emulator, "DELETE", f"users/{oid}")
    held = run_import(datasource)
    assert held.status == TaskRun.CONFIRM and "6 of" in held.error
    assert all(imported_users(datasource)[oid].active for oid in victims)
    assert len(held.summary["guard"]["names"]) == 6
    page = admin_client.get(f"/admin/scheduled-tasks/runs/{held.id}").get_data(as_text=True)
    assert "Confirm and apply" in page
    assert "waits for an administrator" in admin_client.get("/admin/").get_data(as_text=True)
    token = csrf_token(admin_client, f"/admin/scheduled-tasks/runs/{held.id}")
    response = admin_client.post(f"/admin/scheduled-tasks/runs/{held.id}/confirm", data={"csrf_token": token})
    assert response.status_code == 302
    drain(huey)
    huey.flush()
    confirmed = db.session.scalars(db.select(TaskRun).order_by(TaskRun.id.desc())).first()
    assert confirmed.status == TaskRun.SUCCEEDED and confirmed.disabled == 6
    assert all(not imported_users(datasource)[oid].active for oid in victims)
    assert "waits for an administrator" not in admin_client.get("/admin/").get_data(as_text=True)


def test_dry_run_shows_the_difference_by_name_and_changes_nothing(
        datasource: Datasource, emulator: EmulatorHandle, admin_client: FlaskClient) -> None:
    first = run_import(datasource, dry_run=True)
    assert first.status == TaskRun.SUCCEEDED and first.created == len(graph_users(emulator))
    assert imported_users(datasource) == {} and import_for(datasource).users_delta is None
    save_import_settings(admin_client, datasource, on_missing="remove")
    run_import(datasource)
    local = imported_users(datasource)
    adele = next(u for u in local.values() if u.email == "adele.vance@contoso.example")
    megan = next(u for u in local.values() if u.email == "megan.bowen@contoso.example")
    control(emulator, "PATCH", f"users/{adele.object_id}", {"displayName": "Adele Renamed"})
    control(emulator, "DELETE", f"users/{megan.object_id}")
    control(emulator, "POST", "users", {"userPrincipalName": "zoe.new@contoso.example", "displayName": "Zoe New",
                                        "mailNickname": "zoe.new", "accountEnabled": True})
    link = import_for(datasource).users_delta
    dry = run_import(datasource, dry_run=True)
    assert dry.status == TaskRun.SUCCEEDED, dry.error
    names = dry.summary["names"]
    assert names == {"created": ["Zoe New"], "updated": ["Adele Renamed"], "removed": ["Megan Bowen"]}
    assert imported_users(datasource).keys() == local.keys() and import_for(datasource).users_delta == link
    page = admin_client.get(f"/admin/scheduled-tasks/runs/{dry.id}").get_data(as_text=True)
    assert "What the import would change" in page and "To remove (1)" in page and "Megan Bowen" in page
    real = run_import(datasource)
    assert (real.created, real.updated, real.removed) == (1, 1, 1)
    assert real.summary["names"] == names


def test_a_user_deleted_and_recreated_with_the_same_upn_is_a_new_local_user(
        datasource: Datasource, emulator: EmulatorHandle, admin_client: FlaskClient) -> None:
    save_import_settings(admin_client, datasource, on_missing="disable")
    run_import(datasource)
    old = next(u for u in imported_users(datasource).values() if u.email == "adele.vance@contoso.example")
    control(emulator, "DELETE", f"users/{old.object_id}")
    new = control(emulator, "POST", "users", {"userPrincipalName": "adele.vance@contoso.example", "mailNickname":
                                              "adele.vance", "displayName": "Adele Vance", "accountEnabled": True})
    run = run_import(datasource)
    assert run.status == TaskRun.SUCCEEDED and run.errors == 0, run.summary
    local = imported_users(datasource)
    assert local[new["id"]].email == "adele.vance@contoso.example" and local[new["id"]].active
    assert local[old.object_id].active is False and local[old.object_id].email != "adele.vance@contoso.example"
    assert (run.created, run.disabled) == (1, 1)
    assert len(local) == len(graph_users(emulator)) + 1


def test_cli_import_run_dry_run_and_status(datasource: Datasource, app: Flask) -> None:
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["import", "run", datasource.name, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "succeeded: created 50" in dry.output and "created: " in dry.output
    assert imported_users(datasource) == {}
    status = runner.invoke(args=["import", "status"])
    assert "next run is a full sync" in status.output and "dry run" in status.output
    real = runner.invoke(args=["import", "run", datasource.name.upper()])
    assert real.exit_code == 0 and "succeeded: created 50" in real.output
    status = runner.invoke(args=["import", "status"])
    assert "delta link stored" in status.output and "between rounds" in status.output
    assert runner.invoke(args=["import", "run", "nope"]).exit_code != 0


def test_existing_local_users_of_the_tenant_are_matched_by_object_id_and_strangers_count_as_gone(
        datasource: Datasource, emulator: EmulatorHandle, admin_client: FlaskClient) -> None:
    import uuid

    source = graph_users(emulator)
    adele_oid = next(oid for oid, u in source.items() if u["user_principal_name"] == "adele.vance@contoso.example")
    known = make_user("adele.old@example.com", None, "Administrator", name="Adele (signed in by SSO)")
    known.tenant_id, known.object_id = datasource.tenant_id, adele_oid
    stranger = make_user("left.long.ago@contoso.example", None, "User", name="Left Long Ago")
    stranger.tenant_id, stranger.object_id = datasource.tenant_id, str(uuid.uuid4())
    db.session.commit()
    save_import_settings(admin_client, datasource, on_missing="disable", removal_guard_percent="50")
    run = run_import(datasource)
    assert run.status == TaskRun.SUCCEEDED, run.error
    local = imported_users(datasource)
    assert set(local) == set(source) | {stranger.object_id}
    assert run.created == len(source) - 1 and run.updated == 1 and run.disabled == 1
    assert local[adele_oid].email == "adele.vance@contoso.example" and local[adele_oid].id == known.id
    assert local[adele_oid].role_names == {"Administrator"}  # the default role is for new users only
    assert local[stranger.object_id].active is False
