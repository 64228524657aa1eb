"""Times on pages: in the viewer's zone (their preference, else TIME_ZONE) with the zone named, inside <time>
carrying the UTC instant; scheduled tasks read their times of day in the zone chosen in their form."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.extensions import db
from core.models import AuditEvent, User
from jobs.models import ScheduledTask
from tests.conftest import ADMIN_EMAIL, USER_EMAIL, USER_PASSWORD, csrf_token, sign_in


def _text(response) -> str:  # type: ignore[no-untyped-def]
    """The page with the no-break spaces that keep "4 Dec 2026" and "09:00 CET" together read as spaces."""
    return response.get_data(as_text=True).replace("\u00a0", " ")


def _set_zone(email: str, name: str | None) -> None:
    db.session.scalar(select(User).where(User.email == email)).time_zone = name
    db.session.commit()


def _task(**fields: object) -> ScheduledTask:
    task = ScheduledTask(name="Nightly", kind=ScheduledTask.KIND_REFRESH, schedule="daily", at_minute=9 * 60,
                         owner="test", **fields)
    db.session.add(task)
    db.session.commit()
    return task


def test_pages_show_times_in_the_viewers_zone_with_its_name(admin_client: FlaskClient) -> None:
    _task(next_run_at=datetime(2026, 12, 4, 8, 0, tzinfo=UTC), time_zone="Europe/Paris")
    db.session.add(AuditEvent(at=datetime(2026, 7, 1, 12, 0, 5, tzinfo=UTC), actor="someone", action="test.event"))
    db.session.commit()
    _set_zone(ADMIN_EMAIL, "Europe/Paris")
    page = _text(admin_client.get("/admin/scheduled-tasks"))
    assert '<time datetime="2026-12-04T08:00:00Z" title="Europe/Paris">4 Dec 2026, 09:00 CET</time>' in page
    assert "Daily at 09:00 Europe/Paris" in page
    audit = _text(admin_client.get("/admin/audit"))
    assert '<time datetime="2026-07-01T12:00:05Z" title="Europe/Paris">1 Jul 2026, 14:00:05 CEST</time>' in audit

    _set_zone(ADMIN_EMAIL, "America/Los_Angeles")  # the same instants for a viewer in Seattle
    page = _text(admin_client.get("/admin/scheduled-tasks"))
    assert ">4 Dec 2026, 00:00 PST</time>" in page
    _set_zone(ADMIN_EMAIL, "Asia/Kolkata")
    assert ">4 Dec 2026, 13:30 IST</time>" in _text(admin_client.get("/admin/scheduled-tasks"))


def test_without_a_preference_pages_use_the_deployment_zone(app: Flask, admin_client: FlaskClient) -> None:
    _task(next_run_at=datetime(2026, 12, 4, 8, 0, tzinfo=UTC))
    app.config["TIME_ZONE"] = "America/New_York"
    page = _text(admin_client.get("/admin/scheduled-tasks"))
    assert '<time datetime="2026-12-04T08:00:00Z" title="America/New_York">4 Dec 2026, 03:00 EST</time>' in page
    home = _text(admin_client.get("/"))
    assert re.search(r'id="time-zone">America/New_York', home)
    assert re.search(r'<td class="text-nowrap"><time datetime="\d{4}-\d\d-\d\dT[\d:]+Z" title="America/New_York">'
                     r'\d+ \w{3} \d{4}, \d\d:\d\d E[SD]T</time>', home)  # the sessions table (epoch seconds)


def test_a_user_chooses_a_time_zone_on_their_preferences_page(app: Flask, client: FlaskClient,
                                                              plain_user: User) -> None:
    app.config["TIME_ZONE"] = "Europe/London"
    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    form = client.get("/preferences").get_data(as_text=True)
    assert '<option selected value="">The gateway&#39;s default (Europe/London)</option>' in form
    assert 'data-offer-browser-zone' in form and "js/time-zone.js" in form
    token = csrf_token(client, "/preferences")

    refused = client.post("/preferences", data={"csrf_token": token, "time_zone": "Mars/Olympus_Mons"})
    assert refused.status_code == 422
    assert "Not a valid choice" in refused.get_data(as_text=True)
    assert db.session.get(User, plain_user.id).time_zone is None

    saved = client.post("/preferences", data={"csrf_token": token, "time_zone": "Europe/Berlin"})
    assert saved.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, plain_user.id).time_zone == "Europe/Berlin"
    assert "Times are shown in Europe/Berlin." in client.get("/preferences").get_data(as_text=True)
    assert 'id="time-zone">Europe/Berlin' in client.get("/").get_data(as_text=True)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.preferences"))
    assert event is not None and event.detail == {"time_zone": "Europe/Berlin"}

    client.post("/preferences", data={"csrf_token": token, "time_zone": ""})
    db.session.expire_all()
    assert db.session.get(User, plain_user.id).time_zone is None


def test_the_task_form_reads_times_in_the_chosen_zone(app: Flask, admin_client: FlaskClient) -> None:
    app.config["TIME_ZONE"] = "Europe/London"
    form = admin_client.get("/admin/scheduled-tasks/new").get_data(as_text=True)
    assert '<option selected value="Europe/London">Europe/London</option>' in form  # the deployment's, preselected
    assert '<option value="America/Los_Angeles">America/Los Angeles</option>' in form
    token = csrf_token(admin_client, "/admin/scheduled-tasks/new")
    base = {"csrf_token": token, "kind": "token_refresh", "at_time": "09:00", "interval_minutes": "60",
            "weekday": "0", "day_of_month": "1", "enabled": "y"}

    bad = admin_client.post("/admin/scheduled-tasks/new", data={**base, "name": "Bad", "schedule": "daily",
                                                                 "time_zone": "Not/A_Zone"})
    assert bad.status_code == 200 and "Not a valid choice" in bad.get_data(as_text=True)

    assert admin_client.post("/admin/scheduled-tasks/new", data={
        **base, "name": "Morning in Seattle", "schedule": "daily", "weekdays_only": "y",
        "time_zone": "America/Los_Angeles"}).status_code == 302
    task = db.session.scalar(select(ScheduledTask).where(ScheduledTask.name == "Morning in Seattle"))
    assert task.time_zone == "America/Los_Angeles"
    local = task.next_run_at.astimezone(ZoneInfo("America/Los_Angeles"))
    assert (local.hour, local.minute, local.weekday() < 5) == (9, 0, True)

    assert admin_client.post("/admin/scheduled-tasks/new", data={
        **base, "name": "Once in London", "schedule": "once", "run_at": "2099-07-01T09:00",
        "time_zone": "Europe/London"}).status_code == 302
    once = db.session.scalar(select(ScheduledTask).where(ScheduledTask.name == "Once in London"))
    assert once.run_at == datetime(2099, 7, 1, 8, 0, tzinfo=UTC)  # 09:00 BST
    page = admin_client.get(f"/admin/scheduled-tasks/{once.id}").get_data(as_text=True)
    assert 'value="2099-07-01T09:00"' in page  # edited in the task's zone
    assert "Once at 2099-07-01 09:00 Europe/London" in page
