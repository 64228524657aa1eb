"""Faults during an import, against the emulator's controls: throttling and 5xx mid-run, the grant revoked
mid-run, an expired delta token, a worker killed mid-run (then resumed). Nothing is lost or duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import Datasource, User
from emulator.server import EmulatorHandle
from imports.importer import Importer
from imports.state import import_for
from jobs.models import TaskRun
from office365.graph import GraphClient
from tests.conftest import TEST_FERNET_KEY
from tests.imports.helpers import (
    ADMIN_UPN,
    authorized_datasource,
    control,
    graph_users,
    imported_users,
    reauthorize,
    run_import,
    save_import_settings,
    staged_users,
)
from tests.o365_helpers import emulator_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def datasource(app: Flask, admin_client: FlaskClient, emulator: EmulatorHandle) -> Datasource:
    app.config.update(IMPORT_PAGE_SIZE=5, IMPORT_GRAPH_DEADLINE=3)
    return authorized_datasource(admin_client, emulator)


def after_users_pages(monkeypatch: pytest.MonkeyPatch, pages: int, action: Callable[[], None]) -> None:
    """Run `action` once, right after Graph answered the `pages`-th page of users, so the next page's request
    meets it. Hooked where pages are read, not where they are committed: the reader reads ahead, so a fault set
    after the n-th commit could arrive after every page had already been read (a race that made these tests flaky).
    """
    original = GraphClient.request
    seen = []

    def request(self: GraphClient, method: str, path: str, **kwargs: Any) -> Any:
        response = original(self, method, path, **kwargs)
        if method == "GET" and "/users/delta" in path:
            seen.append(path)
            if len(seen) == pages:
                action()
        return response

    monkeypatch.setattr(GraphClient, "request", request)


def assert_mirrors_the_source(datasource: Datasource, emulator: EmulatorHandle) -> None:
    """Every source user exactly once, and no local user of the tenant twice."""
    local = imported_users(datasource)
    assert set(local) == set(graph_users(emulator))
    emails = db.session.scalars(db.select(User.email).where(User.tenant_id == datasource.tenant_id)).all()
    assert len(emails) == len(set(emails)) == len(local)


def test_throttling_and_503_mid_run_are_retried_and_the_run_succeeds(
        datasource: Datasource, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch,
        app: Flask) -> None:
    # The four faults can all land on one page's attempts (1 s Retry-After twice, two backoffs): give that page
    # room, as production's deadline does; the 3 s of the other fault tests made this one fail under load.
    app.config["IMPORT_GRAPH_DEADLINE"] = 15

    def faults() -> None:
        control(emulator, "POST", "faults", {"kind": "throttle", "retry_after": 1, "every": 3, "count": 2,
                                             "path": "/users/delta"})
        control(emulator, "POST", "faults", {"kind": "error", "status": 503, "count": 2, "path": "/users/delta"})

    after_users_pages(monkeypatch, 2, faults)
    run = run_import(datasource)
    assert run.status == TaskRun.SUCCEEDED, run.error
    assert run.graph_requests >= run.pages + 4  # the retries were counted
    assert_mirrors_the_source(datasource, emulator)


def test_graph_down_mid_run_fails_with_the_reason_and_the_next_run_resumes(
        datasource: Datasource, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch,
        admin_client: FlaskClient, app: Flask) -> None:
    total = len(graph_users(emulator))
    after_users_pages(monkeypatch, 3, lambda: control(emulator, "POST", "faults", {
        "kind": "error", "status": 503, "path": "/users/delta"}))
    failed = run_import(datasource)
    assert failed.status == TaskRun.FAILED and "503" in failed.error and "resumes" in failed.error
    partial = staged_users(datasource)  # the 3 pages read before Graph went down
    assert partial == 15 < total and import_for(datasource).users_next
    assert imported_users(datasource) == {}  # local users change only once every page is read
    page = admin_client.get(f"/admin/scheduled-tasks/imports/{datasource.id}").get_data(as_text=True)
    assert f"(users, {partial // 5} page(s) of users read and not yet applied)" in page
    status = app.test_cli_runner().invoke(args=["import", "status"]).output
    assert f"phase users, resuming mid-round, {partial // 5} page(s) read and not yet applied" in status
    assert f"run #{failed.id}" in admin_client.get("/admin/").get_data(as_text=True)
    assert 'id="import-failed"' in admin_client.get(f"/admin/datasources/{datasource.id}").get_data(as_text=True)
    control(emulator, "DELETE", "faults")
    monkeypatch.undo()
    resumed = run_import(datasource)
    assert resumed.status == TaskRun.SUCCEEDED, resumed.error
    assert resumed.processed == total - partial and resumed.pages < total // 5  # no page read twice or skipped
    assert resumed.created == total and staged_users(datasource) == 0
    assert_mirrors_the_source(datasource, emulator)
    assert 'id="import-failed"' not in admin_client.get(f"/admin/datasources/{datasource.id}").get_data(as_text=True)


def test_grant_revoked_mid_run_marks_the_datasource_and_resumes_after_reauthorization(
        datasource: Datasource, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch,
        admin_client: FlaskClient) -> None:
    def revoke() -> None:
        control(emulator, "POST", "revoke", {"user": ADMIN_UPN})
        # The cached access token would work until it expires; Graph rejecting it forces the refresh.
        control(emulator, "POST", "faults", {"kind": "error", "status": 401, "count": 1, "path": "/users/delta"})

    after_users_pages(monkeypatch, 2, revoke)
    failed = run_import(datasource)
    assert failed.status == TaskRun.FAILED and "re-authorized" in failed.error
    assert db.session.get(Datasource, datasource.id).status == Datasource.NEEDS_REAUTHORIZATION
    partial = staged_users(datasource)
    assert partial == 10 < len(graph_users(emulator)) and imported_users(datasource) == {}
    monkeypatch.undo()
    reauthorize(admin_client, emulator, datasource)
    resumed = run_import(datasource)
    assert resumed.status == TaskRun.SUCCEEDED, resumed.error
    assert resumed.processed == len(graph_users(emulator)) - partial
    assert resumed.created == len(graph_users(emulator))
    assert_mirrors_the_source(datasource, emulator)


def test_expired_delta_token_falls_back_to_a_full_resync_by_itself(
        datasource: Datasource, emulator: EmulatorHandle, admin_client: FlaskClient) -> None:
    save_import_settings(admin_client, datasource, on_missing="disable")
    run_import(datasource)
    adele = next(u for u in imported_users(datasource).values() if u.email == "adele.vance@contoso.example")
    gone = next(u for u in imported_users(datasource).values() if u.email == "megan.bowen@contoso.example")
    control(emulator, "PATCH", f"users/{adele.object_id}", {"displayName": "Adele After Expiry"})
    control(emulator, "DELETE", f"users/{gone.object_id}")
    control(emulator, "POST", "delta/expire")
    run = run_import(datasource)
    assert run.status == TaskRun.SUCCEEDED, run.error
    assert run.resyncs == 1 and run.updated == 1 and run.disabled == 1 and run.created == 0
    local = imported_users(datasource)
    assert local[adele.object_id].display_name == "Adele After Expiry" and local[gone.object_id].active is False
    assert len(local) == len(graph_users(emulator)) + 1
    assert import_for(datasource).users_delta is not None


def test_delta_expiring_mid_walk_restarts_the_round_without_the_expired_pages(
        datasource: Datasource, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    total = len(graph_users(emulator))
    after_users_pages(monkeypatch, 3, lambda: control(emulator, "POST", "delta/expire"))
    merged: list[int] = []
    original = Importer._merge

    def merge(self: Importer) -> None:
        merged.append(len(self.staged))
        original(self)

    monkeypatch.setattr(Importer, "_merge", merge)
    run = run_import(datasource)
    assert run.status == TaskRun.SUCCEEDED, run.error
    assert run.resyncs == 1 and run.created == total
    assert sum(merged) == total  # only the new round's users were merged, not the expired round's pages too
    assert_mirrors_the_source(datasource, emulator)


def test_worker_killed_mid_run_is_failed_with_the_reason_and_the_next_run_resumes(
        datasource: Datasource, emulator: EmulatorHandle, database_url: str, tmp_path: Path) -> None:
    total = len(graph_users(emulator))
    control(emulator, "POST", "faults", {"kind": "delay", "delay_ms": 300, "path": "/users/delta"})
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key-0123456789-abcdefghijkl",
           "TOKEN_ENCRYPTION_KEYS": TEST_FERNET_KEY, "IMPORT_PAGE_SIZE": "5",
           "JOBS_SQLITE_PATH": str(tmp_path / "jobs.db"), **emulator_env(emulator)}
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "import", "run", datasource.name],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    run = None
    while time.monotonic() < deadline:
        db.session.expire_all()
        run = db.session.scalars(db.select(TaskRun).where(TaskRun.trigger == "cli")).first()
        if run is not None and run.phase == "users" and run.pages >= 2:
            break
        time.sleep(0.05)
    assert run is not None and proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    control(emulator, "DELETE", "faults")
    db.session.expire_all()
    killed = db.session.get(TaskRun, run.id)
    assert killed.status == TaskRun.RUNNING  # nobody has looked yet
    partial = staged_users(datasource)
    assert 0 < partial < total

    resumed = run_import(datasource)  # finds the dead holder, fails it with the reason, resumes from its page
    assert resumed.status == TaskRun.SUCCEEDED, resumed.error
    db.session.expire_all()
    killed = db.session.get(TaskRun, run.id)
    assert killed.status == TaskRun.FAILED and "died" in killed.error
    assert resumed.processed == total - partial and resumed.created == total
    assert_mirrors_the_source(datasource, emulator)


def crash_in_merge(monkeypatch: pytest.MonkeyPatch, merges_before: int) -> None:
    """The process dies (an exception nobody catches in the importer) just before committing a merge, after
    `merges_before` merges were committed."""
    original = Importer._merge
    calls = []

    def merge(self: Importer) -> None:
        calls.append(True)
        if len(calls) > merges_before:
            def power_cut(phase: str) -> None:
                raise RuntimeError("power cut during the merge")

            self._commit = power_cut  # type: ignore[method-assign]
        original(self)

    monkeypatch.setattr(Importer, "_merge", merge)


def test_crash_during_a_first_import_merge_redoes_the_merge_without_reading_again(
        datasource: Datasource, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    total = len(graph_users(emulator))
    crash_in_merge(monkeypatch, 0)
    failed = run_import(datasource)
    assert failed.status == TaskRun.FAILED and "power cut" in failed.error
    assert imported_users(datasource) == {} and staged_users(datasource) == total
    assert import_for(datasource).phase == "merge"
    monkeypatch.undo()
    resumed = run_import(datasource)
    assert resumed.status == TaskRun.SUCCEEDED, resumed.error
    assert resumed.created == total and resumed.pages == 0 and resumed.processed == 0  # nothing read again
    assert staged_users(datasource) == 0
    assert_mirrors_the_source(datasource, emulator)


def test_crash_between_merge_chunks_resumes_with_the_next_chunk(
        datasource: Datasource, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    run_import(datasource)
    renamed = sorted(graph_users(emulator))[:12]
    for oid in renamed:
        control(emulator, "PATCH", f"users/{oid}", {"displayName": f"Renamed {oid[:8]}"})
    monkeypatch.setattr("imports.importer.MERGE_CHUNK", 5)
    crash_in_merge(monkeypatch, 1)  # page 1 (5 users) is merged; page 2 is read, its merge dies
    failed = run_import(datasource)
    assert failed.status == TaskRun.FAILED and "power cut" in failed.error
    assert sum(u.display_name.startswith("Renamed") for u in imported_users(datasource).values()) == 5
    assert staged_users(datasource) == 5
    monkeypatch.undo()
    resumed = run_import(datasource)  # merges page 2 with the rest it reads (page 3)
    assert resumed.status == TaskRun.SUCCEEDED, resumed.error
    assert resumed.updated == 7 and resumed.processed == 2 and staged_users(datasource) == 0
    local = imported_users(datasource)
    assert all(local[oid].display_name == f"Renamed {oid[:8]}" for oid in renamed)
    assert_mirrors_the_source(datasource, emulator)
