"""Prometheus multiprocess mode under gunicorn (called from gunicorn.conf.py, in the master)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def prepare_directory() -> str:
    """PROMETHEUS_MULTIPROC_DIR, made if missing (a private temporary folder when unset) and emptied of a previous
    run's files, as prometheus_client requires."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    folder = Path(path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for leftover in folder.glob("*.db"):
        leftover.unlink()
    return path


def mark_dead(pid: int) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
