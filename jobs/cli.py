"""`flask jobs worker|tick`."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup
from huey.consumer import Consumer

from jobs.queue import enqueue_run, get_huey, queue_name
from jobs.scheduler import tick
from observability import metrics

jobs_cli = AppGroup("jobs", help="The background job runner.")


@jobs_cli.command("worker")
@click.option("--workers", default=2, show_default=True, help="Worker threads.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve this process's Graph and token counters for Prometheus on a listener of its own.")
@click.option("--metrics-address", default="127.0.0.1", show_default=True,
              help="Address of that listener (0.0.0.0 only on a private network: it has no token).")
def jobs_worker(workers: int, metrics_port: int | None, metrics_address: str) -> None:
    """Consume the job queue (with REDIS_URL: run one or more of these next to the web processes)."""
    huey = get_huey()
    if metrics_port is not None:
        metrics.serve_process_counters(metrics_address, metrics_port)
        click.echo(f"Metrics of this worker at http://{metrics_address}:{metrics_port}/metrics")
    click.echo(f"Job worker on queue {queue_name(current_app)} with {workers} thread(s); Ctrl-C stops it.")
    Consumer(huey, workers=workers, worker_type="thread", max_delay=1.0).run()


@jobs_cli.command("tick")
def jobs_tick() -> None:
    """Claim and enqueue the scheduled runs that are due (the workers do this every minute)."""
    for run_id in tick(enqueue=enqueue_run):
        click.echo(f"queued run #{run_id}")
