"""Fixtures for the job runner tests: a gateway configured for a fresh tenant emulator, and a private queue."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from emulator.server import EmulatorHandle
from jobs.queue import stop_embedded_consumer
from tests.imports.helpers import use_test_queue
from tests.o365_helpers import emulator_env


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(emulator)


@pytest.fixture
def huey(app: Flask, tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    """A private job queue (SQLite in tmp_path, or Redis with PostgreSQL); the embedded consumer stopped after."""
    queue = use_test_queue(app, tmp_path, database_url)
    app.config["IMPORT_PAGE_SIZE"] = 10
    yield queue
    stop_embedded_consumer()
    queue.flush()
