"""Helpers for the import and job tests: an authorized datasource against the emulator, runs, emulator controls."""

from __future__ import annotations

import re

import requests
from flask.testing import FlaskClient

from core.extensions import db
from core.models import Datasource, User
from emulator.server import EmulatorHandle
from jobs.models import ScheduledTask, TaskRun
from tests.conftest import csrf_token
from tests.o365_helpers import callback_path, sign_in_at_microsoft

ADMIN_UPN = "admin@contoso.example"


def authorized_datasource(client: FlaskClient, emulator: EmulatorHandle, name: str = "Contoso 365") -> Datasource:
    """Create an Office 365 datasource through the admin pages and authorize it at the emulator."""
    token = csrf_token(client, "/admin/datasources/new/office365")
    response = client.post("/admin/datasources/new/office365", data={"csrf_token": token, "name": name})
    datasource_id = int(re.search(r"/admin/datasources/(\d+)", response.headers["Location"]).group(1))
    token = csrf_token(client, f"/admin/datasources/{datasource_id}")
    start = client.post(f"/admin/datasources/{datasource_id}/authorize", data={"csrf_token": token})
    page = client.get(callback_path(sign_in_at_microsoft(emulator, start.headers["Location"], ADMIN_UPN)))
    assert "Connection test succeeded" in page.get_data(as_text=True)
    db.session.expire_all()
    return db.session.get(Datasource, datasource_id)


def control(emulator: EmulatorHandle, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(method, f"{emulator.base_url}/_emulator/{path}", json=body, verify=emulator.ca_path,
                                headers={"Authorization": f"Bearer {emulator.config['control_key']}"}, timeout=10)
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


def run_import(datasource: Datasource, *, dry_run: bool = False, confirm: bool = False) -> TaskRun:
    from jobs.runner import create_run, execute_run

    run = create_run(kind=ScheduledTask.KIND_IMPORT, datasource_id=datasource.id, trigger="manual", actor="test",
                     dry_run=dry_run, confirm_removals=confirm)
    finished = execute_run(run.id)
    assert finished is not None
    db.session.expire_all()
    return finished


def imported_users(datasource: Datasource) -> dict[str, User]:
    """Local users carrying the datasource tenant's identity, by object id."""
    db.session.expire_all()
    return {u.object_id: u for u in db.session.scalars(db.select(User).where(User.tenant_id == datasource.tenant_id))}


def staged_users(datasource: Datasource) -> int:
    """Users read and committed by the import's walk but not yet merged into local users."""
    import json

    from imports.models import StagedPage, UserImport

    db.session.expire_all()
    pages = db.session.scalars(db.select(StagedPage.body).join(UserImport, UserImport.id == StagedPage.import_id)
                               .where(UserImport.datasource_id == datasource.id))
    return len({item["id"] for text in pages for item in json.loads(text)["value"]})


def graph_users(emulator: EmulatorHandle) -> dict[str, dict]:
    """The emulator tenant's users, read straight from its store."""
    store = emulator.app.extensions["emulator.store"]
    rows = store.conn().execute("SELECT id, user_principal_name, display_name, mail, account_enabled FROM users "
                                "WHERE tenant_id = ?", (emulator.tenant_id,)).fetchall()
    return {r["id"]: dict(r) for r in rows}


def use_test_queue(app, tmp_path, database_url: str):  # type: ignore[no-untyped-def]
    """Point the app's huey at a private queue: SQLite in tmp_path, or Redis (unique prefix) with PostgreSQL."""
    import uuid

    from jobs.queue import get_huey
    from tests.conftest import REDIS_TEST_URL

    app.config["JOBS_SQLITE_PATH"] = str(tmp_path / "jobs.db")
    app.config["JOBS_QUEUE_NAME"] = f"test-jobs-{uuid.uuid4().hex[:12]}"
    if database_url.startswith("postgresql"):
        app.config["REDIS_URL"] = REDIS_TEST_URL
    return get_huey(app)


def drain(huey) -> int:  # type: ignore[no-untyped-def]
    """Execute every queued huey task here, as a worker would; returns how many ran."""
    count = 0
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
        count += 1
    return count


def group_members_in_emulator(emulator: EmulatorHandle, name: str) -> tuple[str, set[str]]:
    store = emulator.app.extensions["emulator.store"]
    gid = store.conn().execute("SELECT id FROM groups WHERE display_name = ?", (name,)).fetchone()[0]
    members = {r[0] for r in store.conn().execute(
        "SELECT m.member_id FROM memberships m JOIN users u ON u.id = m.member_id "
        "WHERE m.group_id = ? AND m.relation = 'member'", (gid,))}
    return gid, members


def save_import_settings(client: FlaskClient, datasource: Datasource, **fields) -> str:  # type: ignore[no-untyped-def]
    path = f"/admin/scheduled-tasks/imports/{datasource.id}"
    data = {"csrf_token": csrf_token(client, path), "scope": "all", "default_role": "User",
            "profile_fields": ["display_name", "email", "active"], "on_missing": "nothing",
            "removal_guard_percent": "10", **fields}
    response = client.post(path, data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    db.session.expire_all()
    return response.headers["Location"]


def reauthorize(client: FlaskClient, emulator: EmulatorHandle, datasource: Datasource) -> None:
    token = csrf_token(client, f"/admin/datasources/{datasource.id}")
    start = client.post(f"/admin/datasources/{datasource.id}/authorize", data={"csrf_token": token})
    page = client.get(callback_path(sign_in_at_microsoft(emulator, start.headers["Location"], ADMIN_UPN)))
    assert "Connection test succeeded" in page.get_data(as_text=True)
    db.session.expire_all()
