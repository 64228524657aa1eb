"""Bulk work on an Office 365 datasource as background jobs: a selection's preview (counts and the objects that
would change), the job kind that applies it 20 objects per Graph request with per-object outcomes, resume after a
dead worker, cancel, retry of the failed, and the audit row with the real outcome. Pages (admin/office365/bulk.py)
and the JSON API (api/bulk_jobs.py) call `bulk.service`."""

from __future__ import annotations

from flask import Flask

from bulk.job import register


def init_app(app: Flask) -> None:
    register()  # the "o365_bulk" job kind
