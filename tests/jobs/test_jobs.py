"""Scheduled tasks: schedules, the admin pages, huey (SQLite, or Redis with PostgreSQL), exactly-once claims,
dead workers, the webhook, the keep-alive job."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import Datasource, utcnow
from emulator.server import EmulatorHandle
from jobs.models import ScheduledTask, TaskRun
from jobs.recurrence import describe, next_run
from tests.conftest import TEST_FERNET_KEY, csrf_token, make_user, sign_in
from tests.imports.helpers import authorized_datasource, drain
from tests.o365_helpers import emulator_env

ROOT = Path(__file__).resolve().parents[2]


def _task(**kw):  # type: ignore[no-untyped-def]
    base = {"schedule": "daily", "interval_minutes": 60, "at_minute": 180, "weekdays_only": False, "weekday": 0,
            "day_of_month": 1, "run_at": None}
    return SimpleNamespace(**{**base, **kw})


def test_next_run_for_every_kind_of_schedule() -> None:
    friday = datetime(2026, 11, 27, 12, 7, tzinfo=UTC)  # a Friday
    assert next_run(_task(schedule="minutes", interval_minutes=15), friday) == friday.replace(minute=15)
    assert next_run(_task(schedule="hourly", at_minute=5), friday) == friday.replace(hour=13, minute=5)
    assert next_run(_task(), friday) == datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    assert next_run(_task(weekdays_only=True), friday) == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # Monday
    assert next_run(_task(schedule="weekly", weekday=2), friday) == datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    assert next_run(_task(schedule="monthly", day_of_month=31), friday) == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    once = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    assert next_run(_task(schedule="once", run_at=once), friday) == once
    assert next_run(_task(schedule="once", run_at=once), once) is None
    assert next_run(_task(schedule="webhook"), friday) is None


def _runs(task, after: datetime, count: int) -> list[datetime]:  # type: ignore[no-untyped-def]
    """The next `count` due times, each computed from the one before (as the scheduler does)."""
    times = []
    for _ in range(count):
        after = next_run(task, after)
        times.append(after)
    return times


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_daily_keeps_its_local_time_across_both_daylight_saving_changes() -> None:
    london = _task(at_minute=9 * 60, time_zone="Europe/London")  # BST from 29 Mar 2026 to 25 Oct 2026
    assert _runs(london, _utc(2026, 3, 27, 12), 3) == [_utc(2026, 3, 28, 9), _utc(2026, 3, 29, 8), _utc(2026, 3, 30, 8)]
    assert _runs(london, _utc(2026, 10, 23, 12), 3) == [_utc(2026, 10, 24, 8), _utc(2026, 10, 25, 9),
                                                        _utc(2026, 10, 26, 9)]


def test_a_time_the_clocks_skip_runs_once_at_the_first_instant_after_the_gap() -> None:
    new_york = _task(at_minute=2 * 60 + 30, time_zone="America/New_York")  # 8 Mar 2026: 02:00 EST -> 03:00 EDT
    assert _runs(new_york, _utc(2026, 3, 7, 12), 3) == [_utc(2026, 3, 8, 7, 0),  # 03:00 EDT, the gap's end
                                                        _utc(2026, 3, 9, 6, 30), _utc(2026, 3, 10, 6, 30)]
    london = _task(at_minute=60 + 15, time_zone="Europe/London")  # 29 Mar 2026: 01:00 GMT -> 02:00 BST
    assert next_run(london, _utc(2026, 3, 28, 12)) == _utc(2026, 3, 29, 1, 0)
    assert next_run(london, _utc(2026, 3, 29, 1, 0)) == _utc(2026, 3, 30, 0, 15)
    nuuk = _task(at_minute=23 * 60 + 30, time_zone="America/Nuuk")  # 28 Mar 2026: 23:00 -> 00:00 on the 29th
    assert _runs(nuuk, _utc(2026, 3, 28, 12), 2) == [_utc(2026, 3, 29, 1, 0),  # the 28th's run: 00:00 on the 29th
                                                     _utc(2026, 3, 30, 0, 30)]  # the 29th's, at 23:30


def test_a_time_that_happens_twice_runs_once_at_its_first_occurrence() -> None:
    new_york = _task(at_minute=60 + 30, time_zone="America/New_York")  # 1 Nov 2026: 01:00-02:00 happens twice
    first = next_run(new_york, _utc(2026, 10, 31, 12))
    assert first == _utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert next_run(new_york, first) == _utc(2026, 11, 2, 6, 30)  # not 01:30 EST an hour later
    assert next_run(new_york, _utc(2026, 11, 1, 6, 31)) == _utc(2026, 11, 2, 6, 30)  # a late scheduler too
    london = _task(at_minute=60 + 30, time_zone="Europe/London")  # 25 Oct 2026: 01:00-02:00 happens twice
    assert _runs(london, _utc(2026, 10, 24, 12), 2) == [_utc(2026, 10, 25, 0, 30), _utc(2026, 10, 26, 1, 30)]


@pytest.mark.parametrize("zone_name", ["Europe/London", "America/New_York", "Australia/Sydney", "America/Santiago",
                                       "Australia/Lord_Howe", "America/Nuuk", "Pacific/Chatham"])
def test_a_year_of_daily_runs_is_one_run_a_day_at_its_wall_time(zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    for at_minute in (0, 90, 150, 23 * 60 + 30):
        runs = _runs(_task(at_minute=at_minute, time_zone=zone_name), _utc(2025, 12, 31, 12), 366)
        gaps = {later - earlier for earlier, later in zip(runs, runs[1:], strict=False)}
        assert all(timedelta(hours=22) <= gap <= timedelta(hours=26) for gap in gaps)  # once a day, none skipped
        wall = [(run.astimezone(zone).hour * 60 + run.astimezone(zone).minute) for run in runs]
        moved = [run for run, minute in zip(runs, wall, strict=True) if minute != at_minute]
        assert len(moved) <= 1, (at_minute, moved)  # only a day whose wall time the clocks skipped
        for run in moved:  # runs at the first instant after the gap: a minute earlier is before the change
            before = (run - timedelta(seconds=1)).astimezone(zone)
            assert before.utcoffset() != run.astimezone(zone).utcoffset()


def test_weekdays_only_are_the_zones_weekdays() -> None:
    seattle = _task(at_minute=9 * 60, weekdays_only=True, time_zone="America/Los_Angeles")
    friday_evening = _utc(2026, 12, 5, 3)  # Friday 19:00 in Seattle, Saturday in UTC
    assert next_run(seattle, friday_evening) == _utc(2026, 12, 7, 17)  # Monday 09:00 PST
    sydney = _task(at_minute=8 * 60, weekdays_only=True, time_zone="Australia/Sydney")
    sunday_utc = _utc(2026, 12, 6, 20)  # already Monday 07:00 in Sydney
    assert next_run(sydney, sunday_utc) == _utc(2026, 12, 6, 21)  # Monday 08:00 AEDT
    assert next_run(sydney, _utc(2026, 12, 11, 21)) == _utc(2026, 12, 13, 21)  # Friday's done: next Monday


def test_weekly_and_monthly_in_a_zone_across_a_change() -> None:
    weekly = _task(schedule="weekly", weekday=0, at_minute=9 * 60, time_zone="Europe/London")
    assert _runs(weekly, _utc(2026, 3, 20), 3) == [_utc(2026, 3, 23, 9), _utc(2026, 3, 30, 8), _utc(2026, 4, 6, 8)]
    monthly = _task(schedule="monthly", day_of_month=31, at_minute=9 * 60, time_zone="America/New_York")
    assert _runs(monthly, _utc(2026, 2, 15), 3) == [_utc(2026, 2, 28, 14), _utc(2026, 3, 31, 13),
                                                    _utc(2026, 4, 30, 13)]
    first_of_month = _task(schedule="monthly", day_of_month=1, at_minute=30, time_zone="Asia/Tokyo")
    assert next_run(first_of_month, _utc(2026, 4, 30, 12)) == _utc(2026, 4, 30, 15, 30)  # 1 May 00:30 JST


def test_hourly_follows_the_local_minute_and_every_real_hour() -> None:
    kolkata = _task(schedule="hourly", at_minute=5, time_zone="Asia/Kolkata")  # UTC+05:30
    assert next_run(kolkata, _utc(2026, 12, 4, 10)) == _utc(2026, 12, 4, 10, 35)
    new_york = _task(schedule="hourly", at_minute=5, time_zone="America/New_York")
    assert _runs(new_york, _utc(2026, 11, 1, 5), 3) == [_utc(2026, 11, 1, 5, 5), _utc(2026, 11, 1, 6, 5),
                                                       _utc(2026, 11, 1, 7, 5)]
    lord_howe = _task(schedule="hourly", at_minute=0, time_zone="Australia/Lord_Howe")  # 5 Apr: back 30 minutes
    assert _runs(lord_howe, _utc(2026, 4, 4, 14), 2) == [_utc(2026, 4, 4, 15, 30), _utc(2026, 4, 4, 16, 30)]


def _new_task(client: FlaskClient, **fields: str):  # type: ignore[no-untyped-def]
    data = {"csrf_token": csrf_token(client, "/admin/scheduled-tasks/new"), "name": "Nightly import",
            "kind": "user_import", "schedule": "daily", "at_time": "03:00", "interval_minutes": "60",
            "weekday": "0", "day_of_month": "1", "enabled": "y", **fields}
    return client.post("/admin/scheduled-tasks/new", data=data)


def test_schedule_run_now_on_huey_and_history_with_counts(admin_client: FlaskClient, emulator: EmulatorHandle,
                                                          huey) -> None:  # type: ignore[no-untyped-def]
    ds = authorized_datasource(admin_client, emulator)
    response = _new_task(admin_client, datasource_id=str(ds.id), weekdays_only="y")
    assert response.status_code == 302, response.get_data(as_text=True)
    task = db.session.scalars(db.select(ScheduledTask).filter_by(name="Nightly import")).one()
    assert task.next_run_at is not None and task.next_run_at.weekday() < 5 and task.owner == "admin@example.com"
    listing = admin_client.get("/admin/scheduled-tasks").get_data(as_text=True)
    assert "Daily at 03:00 UTC, weekdays only" in listing and "Datasource token keep-alive" in listing
    token = csrf_token(admin_client, f"/admin/scheduled-tasks/{task.id}")
    run_page = admin_client.post(f"/admin/scheduled-tasks/{task.id}/run", data={"csrf_token": token})
    run_id = int(run_page.headers["Location"].rsplit("/", 1)[1])
    assert admin_client.get(f"/admin/scheduled-tasks/runs/{run_id}/progress").json["status"] == "queued"
    queued = db.session.get(TaskRun, run_id)
    queued.status, queued.phase = TaskRun.RUNNING, "merge"  # as a worker shows it while applying
    db.session.commit()
    run_path = f"/admin/scheduled-tasks/runs/{run_id}"
    assert admin_client.get(f"{run_path}/progress").json["step"] == "applying the users read"
    assert "— applying the users read" in admin_client.get(run_path).get_data(as_text=True)
    queued.status, queued.phase = TaskRun.QUEUED, ""
    db.session.commit()
    assert drain(huey) == 1
    progress = admin_client.get(f"/admin/scheduled-tasks/runs/{run_id}/progress").json
    assert progress["status"] == "succeeded" and progress["done"] and progress["created"] > 40
    assert progress["step"] == ""
    assert progress["pages"] >= 5 and progress["graph_requests"] >= progress["pages"]
    page = admin_client.get(f"/admin/scheduled-tasks/{task.id}").get_data(as_text=True)
    assert f"#{run_id}" in page and "succeeded" in page
    detail = admin_client.get(f"/admin/scheduled-tasks/runs/{run_id}").get_data(as_text=True)
    assert "<progress" in detail and "Adele Vance" in detail and "style=" not in detail


def test_enable_disable_webhook_and_regenerate(admin_client: FlaskClient, emulator: EmulatorHandle,
                                               huey) -> None:  # type: ignore[no-untyped-def]
    ds = authorized_datasource(admin_client, emulator)
    _new_task(admin_client, name="On demand", datasource_id=str(ds.id), schedule="webhook")
    task = db.session.scalars(db.select(ScheduledTask).filter_by(name="On demand")).one()
    assert task.next_run_at is None
    page = admin_client.get(f"/admin/scheduled-tasks/{task.id}").get_data(as_text=True)
    url = re.search(r'<code id="webhook-url"[^>]*>([^<]+)</code>', page).group(1)
    path = url.split("://", 1)[1].split("/", 1)[1]
    outsider = admin_client.application.test_client()
    accepted = outsider.post(f"/{path}")
    assert accepted.status_code == 202 and accepted.json["status"] == "queued"
    assert outsider.post("/hooks/tasks/not-the-secret").status_code == 404
    # The secret in a header keeps it out of access logs; the page shows that form first.
    endpoint = re.search(r'<code id="webhook-endpoint"[^>]*>([^<]+)</code>', page).group(1)
    secret = re.search(r'<span id="webhook-secret">([^<]+)</span>', page).group(1)
    assert endpoint.endswith("/hooks/tasks") and secret in url
    header_path = "/" + endpoint.split("://", 1)[1].split("/", 1)[1]
    by_header = outsider.post(header_path, headers={"X-Webhook-Secret": secret})
    assert by_header.status_code == 202 and by_header.json["status"] == "queued"
    by_bearer = outsider.post(header_path, headers={"Authorization": f"Bearer {secret}"})
    assert by_bearer.status_code == 202
    missing = outsider.post(header_path)
    assert missing.status_code == 401 and missing.json["error"]["code"] == "secret_required"
    assert outsider.post(header_path, headers={"X-Webhook-Secret": "not-the-secret"}).status_code == 404
    token = csrf_token(admin_client, f"/admin/scheduled-tasks/{task.id}")
    admin_client.post(f"/admin/scheduled-tasks/{task.id}/webhook", data={"csrf_token": token})
    assert outsider.post(f"/{path}").status_code == 404  # the old secret is dead
    assert outsider.post(header_path, headers={"X-Webhook-Secret": secret}).status_code == 404
    admin_client.post(f"/admin/scheduled-tasks/{task.id}/toggle", data={"csrf_token": token})
    db.session.expire_all()
    assert db.session.get(ScheduledTask, task.id).enabled is False
    assert drain(huey) == 3
    runs = db.session.scalars(db.select(TaskRun).filter_by(trigger="webhook")).all()
    assert len(runs) == 3 and {run.status for run in runs} == {"succeeded"}


def test_scheduled_tasks_are_for_administrators_only(client: FlaskClient, app: Flask) -> None:
    make_user("ops@example.com", "ops-password-123", "Manage datasources")
    sign_in(client, "ops@example.com", "ops-password-123")
    assert client.get("/admin/scheduled-tasks").status_code == 403
    assert client.get("/admin/scheduled-tasks/runs/1/progress").status_code == 403


def _due_task(ds: Datasource) -> ScheduledTask:
    task = ScheduledTask(name="Every minute", kind="user_import", datasource_id=ds.id, schedule="minutes",
                         interval_minutes=1, owner="test", next_run_at=utcnow().replace(microsecond=0)
                         - timedelta(seconds=5))
    db.session.add(task)
    db.session.commit()
    return task


def test_two_processes_racing_for_the_same_scheduled_run_claim_it_once(
        admin_client: FlaskClient, emulator: EmulatorHandle, huey, database_url: str, app: Flask,
        tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = authorized_datasource(admin_client, emulator)
    task = _due_task(ds)
    due = task.next_run_at
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key-0123456789-abcdefghijkl",
           "TOKEN_ENCRYPTION_KEYS": TEST_FERNET_KEY, "JOBS_QUEUE_NAME": app.config["JOBS_QUEUE_NAME"],
           "JOBS_SQLITE_PATH": app.config["JOBS_SQLITE_PATH"], **emulator_env(emulator)}
    if app.config.get("REDIS_URL"):
        env["REDIS_URL"] = app.config["REDIS_URL"]
    procs = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "jobs", "tick"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    claimed = [out for out, _ in outputs if "queued run" in out]
    assert len(claimed) == 1, outputs
    db.session.expire_all()
    runs = db.session.scalars(db.select(TaskRun).filter_by(task_id=task.id)).all()
    assert len(runs) == 1 and runs[0].due_at == due and runs[0].trigger == "schedule"
    assert db.session.get(ScheduledTask, task.id).next_run_at > due
    assert drain(huey) == 1
    db.session.expire_all()
    assert db.session.get(TaskRun, runs[0].id).status == "succeeded"


def test_claims_in_threads_and_the_embedded_consumer(admin_client: FlaskClient, emulator: EmulatorHandle,
                                                     huey, app: Flask) -> None:  # type: ignore[no-untyped-def]
    import threading

    from jobs.queue import start_embedded_consumer
    from jobs.scheduler import tick

    ds = authorized_datasource(admin_client, emulator)
    task = _due_task(ds)
    results: list[list[int]] = []

    def worker() -> None:
        with app.app_context():
            results.append(tick())

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    claimed = [run_id for ids in results for run_id in ids]
    assert len(claimed) == 1
    from jobs.queue import enqueue_run

    enqueue_run(claimed[0])
    consumer = start_embedded_consumer(app, workers=1)
    assert start_embedded_consumer(app) is consumer  # once per process
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while datetime.now(UTC) < deadline:
        db.session.expire_all()
        if db.session.get(TaskRun, claimed[0]).done:
            break
        threading.Event().wait(0.2)
    assert db.session.get(TaskRun, claimed[0]).status == "succeeded"
    assert db.session.scalar(db.select(db.func.count(TaskRun.id)).where(TaskRun.task_id == task.id)) == 1


def test_a_run_whose_worker_stopped_is_failed_with_the_reason_and_flagged(
        admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask) -> None:
    from jobs.runner import sweep_stale

    ds = authorized_datasource(admin_client, emulator)
    old = utcnow() - timedelta(minutes=10)
    run = TaskRun(kind="user_import", datasource_id=ds.id, trigger="schedule", status="running", started_at=old,
                  heartbeat_at=old, worker="elsewhere:4242")
    dead = TaskRun(kind="user_import", datasource_id=ds.id, trigger="cli", status="running", started_at=utcnow(),
                   heartbeat_at=utcnow(), worker=f"{os.uname().nodename}:999999")
    db.session.add_all([run, dead])
    db.session.commit()
    assert sweep_stale() == 2
    db.session.expire_all()
    assert run.status == "failed" and "stopped responding" in run.error and "resumes" in run.error
    assert dead.status == "failed" and "died" in dead.error
    home = admin_client.get("/admin/").get_data(as_text=True)
    assert f"run #{dead.id}" in home and "failed" in home
    detail = admin_client.get(f"/admin/datasources/{ds.id}").get_data(as_text=True)
    assert 'id="import-failed"' in detail


def test_keep_alive_refresh_is_a_scheduled_job(admin_client: FlaskClient, emulator: EmulatorHandle,
                                               huey) -> None:  # type: ignore[no-untyped-def]
    from jobs.runner import create_run, execute_run
    from jobs.scheduler import ensure_system_tasks

    ds = authorized_datasource(admin_client, emulator)
    before = ds.last_refresh_ok_at
    ensure_system_tasks()
    ensure_system_tasks()
    task = db.session.scalars(db.select(ScheduledTask).filter_by(kind="token_refresh")).one()
    assert task.schedule == "daily" and task.next_run_at is not None
    run = execute_run(create_run(kind=task.kind, datasource_id=None, trigger="manual", task=task).id)
    assert run.status == "succeeded" and run.updated == 1
    db.session.expire_all()
    assert db.session.get(Datasource, ds.id).last_refresh_ok_at > before


def test_a_separate_flask_jobs_worker_process_runs_queued_runs(
        admin_client: FlaskClient, emulator: EmulatorHandle, huey, database_url: str, app: Flask) -> None:  # type: ignore[no-untyped-def]
    import signal
    import time

    from jobs.queue import enqueue_run
    from jobs.runner import create_run

    ds = authorized_datasource(admin_client, emulator)
    run = create_run(kind="user_import", datasource_id=ds.id, trigger="manual", actor="test")
    enqueue_run(run.id)
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key-0123456789-abcdefghijkl",
           "TOKEN_ENCRYPTION_KEYS": TEST_FERNET_KEY, "JOBS_QUEUE_NAME": app.config["JOBS_QUEUE_NAME"],
           "JOBS_SQLITE_PATH": app.config["JOBS_SQLITE_PATH"], "IMPORT_PAGE_SIZE": "10", **emulator_env(emulator)}
    if app.config.get("REDIS_URL"):
        env["REDIS_URL"] = app.config["REDIS_URL"]
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "jobs", "worker", "--workers", "1"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            db.session.expire_all()
            if db.session.get(TaskRun, run.id).done:
                break
            time.sleep(0.2)
        finished = db.session.get(TaskRun, run.id)
        assert finished.status == "succeeded" and finished.created > 40, finished.error
        assert finished.worker.endswith(f":{worker.pid}")
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)


def test_task_form_checks_and_saves_only_the_fields_of_its_schedule(admin_client: FlaskClient) -> None:
    """Hourly reads the minute past the hour; junk left in the fields of other schedules is neither an error nor saved
    (the page hides those fields, but a browser without script sends them all)."""
    response = _new_task(admin_client, name="Hourly keep-alive", kind="token_refresh", schedule="hourly", minute="5",
                         interval_minutes="0", at_time="nonsense", day_of_month="99", run_at="not a date")
    assert response.status_code == 302, response.get_data(as_text=True)
    task = db.session.scalars(db.select(ScheduledTask).filter_by(name="Hourly keep-alive")).one()
    assert (task.schedule, task.at_minute, task.interval_minutes, task.day_of_month, task.run_at) == \
        ("hourly", 5, 60, 1, None)
    assert describe(task) == "Hourly at :05"

    page = _new_task(admin_client, name="Bad minute", schedule="hourly", minute="75").get_data(as_text=True)
    assert "Number must be between 0 and 59." in page and 'aria-invalid="true"' in page
    page = _new_task(admin_client, name="Bad interval", schedule="minutes", interval_minutes="0").get_data(as_text=True)
    assert "Number must be between 1 and 1440." in page
