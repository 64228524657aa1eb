"""gunicorn reads this file from the working directory (the checkout's root, or /app in the image).

Prometheus multiprocess mode: every worker writes its counters under PROMETHEUS_MULTIPROC_DIR and /metrics adds
them up. The directory is made (or emptied) when the master starts, before any worker imports prometheus_client;
when a worker exits its live-gauge files are marked dead (its counters stay counted, as Prometheus expects).
"""

from observability.multiproc import mark_dead, prepare_directory

prepare_directory()


def child_exit(server, worker):  # type: ignore[no-untyped-def]  # gunicorn's hook signature
    mark_dead(worker.pid)
