"""Background jobs: scheduled tasks and their runs on huey (see queue.py for the two deployments)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from jobs.cli import import_cli, jobs_cli
    from jobs.queue import init_queue
    from jobs.webhook import bp

    app.register_blueprint(bp)
    app.cli.add_command(import_cli)
    app.cli.add_command(jobs_cli)
    init_queue(app)
