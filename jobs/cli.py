"""`flask jobs worker|tick`."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup
from huey.consumer import Consumer

from jobs.queue import enqueue_run, get_huey, queue_name
from jobs.scheduler import tick

jobs_cli = AppGroup("jobs", help="The background job runner.")


@jobs_cli.command("worker")
@click.option("--workers", default=2, show_default=True, help="Worker threads.")
def jobs_worker(workers: int) -> None:
    """Consume the job queue (with REDIS_URL: run one or more of these next to the web processes)."""
    huey = get_huey()
    click.echo(f"Job worker on queue {queue_name(current_app)} with {workers} thread(s); Ctrl-C stops it.")
    Consumer(huey, workers=workers, worker_type="thread", max_delay=1.0).run()


@jobs_cli.command("tick")
def jobs_tick() -> None:
    """Claim and enqueue the scheduled runs that are due (the workers do this every minute)."""
    for run_id in tick(enqueue=enqueue_run):
        click.echo(f"queued run #{run_id}")
