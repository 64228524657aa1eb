"""huey: an SQLite queue in the instance folder with a consumer inside the app (embedded default), or a Redis
queue (REDIS_URL) served by `flask jobs worker` processes.

Tasks run inside an app context of the app that created the queue. The embedded consumer starts once per
process, never in tests unless JOBS_CONSUMER is set, and never for CLI commands other than `flask run`.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from huey import RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer
from sqlalchemy.exc import SQLAlchemyError

from core.extensions import db
from core.files import private_sqlite_file
from jobs.runner import execute_run
from jobs.scheduler import tick

log = logging.getLogger(__name__)
_lock = threading.Lock()
_consumers: dict[int, Consumer] = {}  # pid -> the embedded consumer of that process


class EmbeddedConsumer(Consumer):
    """A consumer on threads inside the app: signals belong to the server, not to us."""

    def _set_signal_handlers(self) -> None:
        return None


def queue_name(app: Flask) -> str:
    return str(app.config.get("JOBS_QUEUE_NAME") or f"{app.config.get('REDIS_PREFIX') or 'gw'}-jobs")


def get_huey(app: Flask | None = None) -> Any:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    huey = app.extensions.get("jobs.huey")
    if huey is not None:
        return huey
    with _lock:
        huey = app.extensions.get("jobs.huey")
        if huey is None:
            huey = app.extensions["jobs.huey"] = _make_huey(app)
    return huey


def _make_huey(app: Flask) -> Any:
    name = queue_name(app)
    if app.config.get("REDIS_URL"):
        huey = RedisHuey(name, url=app.config["REDIS_URL"], results=False)
    else:
        path = app.config.get("JOBS_SQLITE_PATH") or str(Path(app.instance_path) / "jobs.db")
        private_sqlite_file(Path(path))  # 0600, like the keys beside it (its -wal/-shm files follow its mode)
        huey = SqliteHuey(name, filename=path, results=False)

    @huey.task(name="run_task")
    def run_task(run_id: int) -> None:
        with app.app_context():
            execute_run(run_id)

    @huey.periodic_task(crontab(minute="*"), name="scheduler_tick")
    def scheduler_tick() -> None:
        with app.app_context():
            try:
                tick(enqueue=enqueue_run)
            except SQLAlchemyError as exc:  # e.g. started before `flask db upgrade`: say so, retry next minute
                db.session.rollback()
                log.warning("scheduler tick skipped: the database is not ready (%s)", type(exc).__name__)

    app.extensions["jobs.run_task"] = run_task
    return huey


def enqueue_run(run_id: int, delay: float = 0) -> None:
    """Hand a queued run to the consumers, now or after `delay` seconds (a debounced live round)."""
    get_huey()
    task = current_app.extensions["jobs.run_task"]
    if delay > 0:
        task.schedule(args=(run_id,), delay=delay)
    else:
        task(run_id)


def _wants_embedded(app: Flask) -> bool:
    setting = app.config.get("JOBS_CONSUMER")
    if setting is not None:
        return bool(setting)
    if app.testing or app.config.get("REDIS_URL"):
        return False
    ctx = click.get_current_context(silent=True)
    return ctx is None or ctx.command.name == "run"  # a server, or `flask run`; not other CLI commands


def start_embedded_consumer(app: Flask, workers: int | None = None) -> Consumer:
    """Start this process's consumer thread(s) once (again in a forked child: a new pid)."""
    pid = os.getpid()
    with _lock:
        consumer = _consumers.get(pid)
        if consumer is not None:
            return consumer
    huey = get_huey(app)
    consumer = EmbeddedConsumer(huey, workers=workers or int(app.config.get("JOBS_WORKERS", 2)),
                                worker_type="thread", periodic=True, check_worker_health=False, max_delay=1.0)
    with _lock:
        if pid in _consumers:
            return _consumers[pid]
        _consumers[pid] = consumer
    consumer.start()
    log.info("embedded job consumer started (pid %s, queue %s)", pid, queue_name(app))
    return consumer


def stop_embedded_consumer() -> None:
    with _lock:
        consumer = _consumers.pop(os.getpid(), None)
    if consumer is not None:
        consumer.stop(graceful=False)


def init_queue(app: Flask) -> None:
    app.config.setdefault("JOBS_CONSUMER", None)
    if _wants_embedded(app):
        start_embedded_consumer(app)
