"""The user import from Office 365: settings, the run by phase (read and stage, merge, apply, groups), its dry run,
the job the runner executes, and `flask import`."""

from __future__ import annotations

from flask import Flask

from datasources.tenant_change import on_tenant_bound
from imports.cli import import_cli
from imports.job import describe_failure, release_lock, run_import
from imports.state import has_import
from jobs import registry
from jobs.models import ScheduledTask


def init_app(app: Flask) -> None:
    registry.register(ScheduledTask.KIND_IMPORT, run_import, describe_failure=describe_failure, release=release_lock,
                      resumable=True)
    on_tenant_bound(has_import)  # a datasource that imports users keeps its tenant
    app.cli.add_command(import_cli)
