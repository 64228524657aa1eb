"""Issue 15, points 1-2: request_sync debounces — a burst of requests queues one round, a notification moves a
queued poll earlier, live access off queues nothing — a run claims the request once (a second run of the same
burst leaves no row), fallback polling follows the contract with live.subscriptions, and the scheduler tick
restarts a broken chain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from core.extensions import db
from core.models import Datasource, utcnow
from jobs.models import TaskRun
from jobs.runner import execute_run
from live.models import LiveAccess
from live.sync import KIND, fallback_polling, keep_going, request_sync


@pytest.fixture
def app_env() -> dict[str, str]:
    return {}  # no tenant, one session store: these tests are about the bookkeeping


def _datasource(live: bool = True, **fields: object) -> Datasource:
    number = (db.session.scalar(select(func.count()).select_from(Datasource)) or 0) + 1
    datasource = Datasource(name=f"Contoso {number}", status=Datasource.READY, tenant_id=f"t-{number}")
    db.session.add(datasource)
    db.session.flush()
    db.session.add(LiveAccess(datasource_id=datasource.id, enabled=live, **fields))
    db.session.commit()
    return datasource


def _queued() -> list[TaskRun]:
    return list(db.session.scalars(select(TaskRun).where(TaskRun.kind == KIND, TaskRun.status == TaskRun.QUEUED)
                                   .order_by(TaskRun.id)))


def _live(datasource: Datasource) -> LiveAccess:
    db.session.expire_all()
    return db.session.scalars(select(LiveAccess).where(LiveAccess.datasource_id == datasource.id)).one()


def test_a_burst_of_notifications_queues_one_round(app: Flask) -> None:
    datasource = _datasource()
    assert sum(request_sync(datasource.id, "notification") for _ in range(1000)) == 1
    assert len(_queued()) == 1
    live = _live(datasource)
    assert live.sync_reason == "notification" and live.sync_due_at is not None
    assert 1.5 <= (live.sync_due_at - live.sync_requested_at).total_seconds() <= 2.5  # LIVE_DEBOUNCE_SECONDS


def test_a_notification_moves_a_queued_poll_earlier_and_live_access_off_queues_nothing(app: Flask) -> None:
    datasource = _datasource()
    assert request_sync(datasource.id, "poll", delay=60)
    assert request_sync(datasource.id, "notification")  # due in 2 s: sooner than the poll, so a run of its own
    assert not request_sync(datasource.id, "poll", delay=60)  # later than what is due: nothing to add
    assert len(_queued()) == 2 and _live(datasource).sync_reason == "notification"
    off = Datasource(name="Fabrikam", status=Datasource.READY, tenant_id="t-fabrikam")
    db.session.add(off)
    db.session.commit()
    assert not request_sync(off.id, "notification")  # no live_access row
    assert not request_sync(_datasource(live=False).id, "notification")
    assert len(_queued()) == 2


def test_a_round_is_claimed_once_and_a_superseded_run_leaves_no_row(app: Flask) -> None:
    datasource = _datasource()
    datasource.status, datasource.tenant_id = Datasource.INCOMPLETE, None
    db.session.commit()
    assert request_sync(datasource.id, "poll", delay=60)
    assert request_sync(datasource.id, "notification", delay=0)
    superseded, current = _queued()
    # The datasource has never been authorized: the claimed round fails in the import, and says so.
    finished = execute_run(current.id)
    assert finished is not None and finished.status == TaskRun.FAILED
    assert "has not been authorized yet" in (finished.error or "")
    live = _live(datasource)
    assert live.last_round_started_at is not None and "authorized" in (live.last_round_error or "")
    assert live.sync_reason == "retry"  # a failed round asks again, FAILURE_RETRY_SECONDS later
    assert 25 <= (live.sync_due_at - live.sync_requested_at).total_seconds() <= 35
    # The poll's run, whose request the notification took over: nothing to claim, so no row and no audit.
    assert execute_run(superseded.id) is None or db.session.get(TaskRun, superseded.id) is None
    assert db.session.scalar(select(func.count()).select_from(TaskRun).where(TaskRun.id == superseded.id)) == 0


def test_fallback_polling_follows_the_subscriptions_health() -> None:
    assert fallback_polling(LiveAccess(enabled=True, notifications=False, fallback_reason=""))
    assert fallback_polling(LiveAccess(enabled=True, notifications=True,
                                       fallback_reason="PUBLIC_BASE_URL is not set"))
    assert not fallback_polling(LiveAccess(enabled=True, notifications=True, fallback_reason=""))
    assert not fallback_polling(LiveAccess(enabled=False, notifications=False, fallback_reason=""))


def test_the_tick_restarts_a_broken_chain(app: Flask) -> None:
    datasource = _datasource(notifications=False)
    keep_going()
    assert len(_queued()) == 1 and _live(datasource).sync_reason == "poll"
    keep_going()  # a round is pending: nothing more
    assert len(_queued()) == 1
    live = _live(datasource)
    live.sync_due_at = utcnow() - timedelta(minutes=10)  # its worker died long ago
    db.session.commit()
    keep_going()
    assert len(_queued()) == 2


def test_a_round_that_keeps_failing_is_retried_less_and_less_often(app: Flask) -> None:
    datasource = _datasource()
    datasource.status, datasource.tenant_id = Datasource.INCOMPLETE, None
    db.session.commit()
    waits = []
    for _ in range(4):
        assert request_sync(datasource.id, "notification", delay=0)
        execute_run(_queued()[-1].id)
        live = _live(datasource)
        waits.append(round((live.sync_due_at - live.sync_requested_at).total_seconds()))
        live.sync_requested_at = live.sync_due_at = None  # as if the retry had run
        db.session.commit()
    assert waits == [30, 60, 120, 240]
