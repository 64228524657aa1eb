"""The user import from Office 365: settings, the run by phase (read and stage, merge, apply, groups), its dry run,
the job the runner executes, and `flask import`."""

from __future__ import annotations

from flask import Flask

from imports.cli import import_cli
from imports.job import describe_failure, release_lock, run_import
from jobs import registry
from jobs.models import ScheduledTask


def init_app(app: Flask) -> None:
    registry.register(ScheduledTask.KIND_IMPORT, run_import, describe_failure=describe_failure, release=release_lock,
                      resumable=True)
    app.cli.add_command(import_cli)
