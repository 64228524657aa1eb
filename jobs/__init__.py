"""Background jobs: scheduled tasks and their runs on huey (see queue.py for the two deployments).

A generic runner: each kind of job registers its handler in jobs/registry.py from its own package's init_app.
"""

from __future__ import annotations

from flask import Flask

from jobs.cli import jobs_cli
from jobs.queue import init_queue
from jobs.webhook import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.cli.add_command(jobs_cli)
    init_queue(app)
