"""Benchmark of the user import against the tenant emulator in its own process.

The imports run where scheduled imports run: in a job worker (`flask jobs worker`, its own process, started
fresh for each tenant size), which picks up runs queued the way "Run now" queues them. Run times are the runs'
own durations (claim to finish), as the run history shows them.

Prints three figures:
1. throughput: the full import (the worker's first run, cold) vs a baseline that reads the same delta pages
   (same $select, same page size) and discards them; target ratio >= 0.5;
2. the worker's peak memory (VmHWM of the worker process) at three tenant sizes; target < 200 MB and not growing
   with the tenant. Memory is bounded by fixed amounts (SQLite's page cache of 16 MB, a merge of 10,000 users,
   16 pages read ahead) that fill up as the tenant grows to about 50,000 users; flat means no growth beyond that,
   so the verdict compares the two larger sizes (and every size is printed);
3. a second run (same worker) after 1% of the users changed vs the full import; target <= 10% of its time.

    .venv/bin/python bench/bench_import.py                  # 100,000 users (and 20,000 and 50,000 for memory)
    .venv/bin/python bench/bench_import.py --users 20000 --smaller 5000,10000

Everything runs on 127.0.0.1; the database is a fresh SQLite file per size (or --database-url, an empty database).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FERNET = "x1vUJ3GXj4gWn3LkqOFd6V5Oq6l2sHfQ0t0Zf2J8m1c="
CALLBACK = "http://localhost/admin/datasources/authorize/callback"
NAME = "Bench tenant"


def start_emulator(data: Path, users: int) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "--port", "0", "--data", str(data), "--users",
                             str(users), "--redirect-uri", CALLBACK], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("EMULATOR READY"):
            break
    else:
        raise SystemExit("the emulator did not start")
    return proc, json.loads((data / "emulator.json").read_text())


def gateway_env(config: dict, database_url: str, work: Path) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijkl",
            "TOKEN_ENCRYPTION_KEYS": FERNET, "O365_AUTHORITY_HOST": config["authority_host"],
            "GRAPH_API_URL": config["graph_url"], "O365_CA_BUNDLE": config["ca_bundle"],
            "O365_CLIENT_ID": config["client_id"], "O365_CLIENT_SECRET": config["client_secret"],
            "IMPORT_PAGE_SIZE": "999", "JOBS_SQLITE_PATH": str(work / "jobs.db"), "JOBS_EMBEDDED_WORKER": "0"}


def signed_in_app(env: dict[str, str], config: dict):  # type: ignore[no-untyped-def]
    """A gateway on a freshly migrated database with an Administrator signed in: (app, client, emulator handle).
    The other benches that drive the pages start from here too."""
    os.environ.update(env)
    from flask_migrate import upgrade

    from app import create_app
    from core.extensions import db
    from core.models import ensure_roles
    from tests.conftest import FreshGlobalsClient, make_user, sign_in

    app = create_app({"TESTING": True})
    app.app_context().push()
    upgrade()
    ensure_roles()
    db.session.commit()
    make_user("bench@example.com", "bench-password-123", "Administrator")
    app.test_client_class = FreshGlobalsClient
    client = app.test_client()
    sign_in(client, "bench@example.com", "bench-password-123")
    handle = SimpleNamespace(base_url=config["base_url"], ca_path=config["ca_bundle"], config=config)
    return app, client, handle


def prepare(env: dict[str, str], config: dict):  # type: ignore[no-untyped-def]
    """Migrate the database, create an admin, authorize the datasource (as an admin would, through the pages)."""
    from tests.imports.helpers import authorized_datasource

    app, client, handle = signed_in_app(env, config)
    datasource = authorized_datasource(client, handle, NAME)  # type: ignore[arg-type]
    return app, datasource


def baseline(datasource) -> tuple[float, int, int]:  # type: ignore[no-untyped-def]
    """Read every page of a full users delta round (same query and page size as the import) and discard it."""
    from datasources.grant import graph_client
    from imports.delta import USER_SELECT

    client = graph_client(datasource)
    started = time.perf_counter()
    url, params, pages, items = "/users/delta", {"$select": USER_SELECT}, 0, 0
    while url:
        body = client.request("GET", url, params=params, headers={"Prefer": "odata.maxpagesize=999"}).body
        url, params = body.get("@odata.nextLink"), None
        pages += 1
        items += len(body.get("value") or [])
    return time.perf_counter() - started, pages, items


class Worker:
    """`flask jobs worker` in its own process, fed through the job queue."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "jobs", "worker", "--workers",
                                      "1"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)

    def run_import(self, datasource) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
        """Queue an import of `datasource` and wait for it: (run duration s, counts)."""
        from core.extensions import db
        from jobs.models import ScheduledTask, TaskRun
        from jobs.queue import enqueue_run
        from jobs.runner import create_run

        run = create_run(kind=ScheduledTask.KIND_IMPORT, datasource_id=datasource.id, trigger="manual",
                         actor="bench")
        enqueue_run(run.id)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            time.sleep(0.2)
            db.session.expire_all()
            run = db.session.get(TaskRun, run.id)
            if run.done:
                break
            if self.proc.poll() is not None:
                raise SystemExit(f"the worker stopped:\n{self.proc.stdout.read() if self.proc.stdout else ''}")
        if run.status != TaskRun.SUCCEEDED:
            raise SystemExit(f"import run #{run.id} {run.status}: {run.error}")
        counts = {name: getattr(run, name) for name in (*TaskRun.COUNTS, "pages", "graph_requests")}
        return run.duration, counts

    def peak_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise SystemExit("no VmHWM for the worker")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def change_users(config: dict, datasource, share: float) -> int:  # type: ignore[no-untyped-def]
    from core.extensions import db
    from core.models import User

    ids = db.session.scalars(db.select(User.object_id).where(User.tenant_id == datasource.tenant_id)
                             .order_by(User.id)).all()
    step = max(1, round(1 / share))
    session = requests.Session()
    session.trust_env = False
    session.verify = config["ca_bundle"]
    headers = {"Authorization": f"Bearer {config['control_key']}"}
    changed = 0
    for oid in ids[::step]:
        response = session.patch(f"{config['base_url']}/_emulator/users/{oid}",
                                 json={"displayName": f"Changed {oid[:8]}"}, headers=headers, timeout=10)
        response.raise_for_status()
        changed += 1
    return changed


def measure(users: int, work: Path, database_url: str | None, second_run: bool) -> dict:
    data = work / f"emu-{users}"
    emulator, config = start_emulator(data, users)
    try:
        url = database_url or f"sqlite:///{work / f'gateway-{users}.db'}"
        env = gateway_env(config, url, work)
        app, datasource = prepare(env, config)
        base_s, pages, items = baseline(datasource)
        worker = Worker(env)
        try:
            full_s, counts = worker.run_import(datasource)
            result = {"users": users, "items": items, "pages": pages, "baseline_s": base_s, "full_s": full_s,
                      "counts": counts}
            if second_run:
                result["changed"] = change_users(config, datasource, 0.01)
                result["second_s"], result["second_counts"] = worker.run_import(datasource)
            result["peak_mb"] = worker.peak_mb()
        finally:
            worker.stop()
        from flask import current_app

        from core.extensions import db

        db.session.remove()
        db.engine.dispose()
        assert current_app._get_current_object() is app  # type: ignore[attr-defined]
        from flask.globals import app_ctx

        app_ctx.pop()
        return result
    finally:
        emulator.terminate()
        emulator.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--smaller", default="20000,50000", help="smaller tenant sizes for the memory comparison")
    parser.add_argument("--database-url", help="an empty database instead of a fresh SQLite file per size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        if args.database_url:  # one tenant per empty database: the large one only, no memory comparison
            sizes = [measure(args.users, work, args.database_url, second_run=True)]
        else:  # the same runs at every size, so peak memory compares
            sizes = [measure(int(n), work, None, second_run=True) for n in args.smaller.split(",")]
            sizes.append(measure(args.users, work, None, second_run=True))
    large, small = sizes[-1], sizes[-2] if len(sizes) > 1 else sizes[-1]
    throughput = (large["items"] / large["full_s"]) / (large["items"] / large["baseline_s"])
    print(f"tenant: {large['users']} users, {large['pages']} delta pages of up to 999")
    print(f"1. throughput: full import {large['items'] / large['full_s']:.0f} users/s in {large['full_s']:.1f} s; "
          f"baseline read-and-discard {large['items'] / large['baseline_s']:.0f} users/s in "
          f"{large['baseline_s']:.1f} s; ratio {throughput:.2f} (target >= 0.5) "
          f"{'OK' if throughput >= 0.5 else 'MISSED'}")
    growth = large["peak_mb"] - small["peak_mb"]
    peaks = ", ".join(f"{size['peak_mb']:.0f} MB at {size['users']} users" for size in sizes)
    print(f"2. worker peak memory: {peaks} (growth over the last two {growth:+.0f} MB; target < 200 MB and flat) "
          f"{'OK' if max(size['peak_mb'] for size in sizes) < 200 and growth < 10 else 'MISSED'}")
    share = large["second_s"] / large["full_s"]
    print(f"3. second run after {large['changed']} users (1%) changed: {large['second_s']:.2f} s = {share:.1%} of the "
          f"full import (target <= 10%) {'OK' if share <= 0.10 else 'MISSED'}; counts {large['second_counts']}")
    print(f"   full import counts {large['counts']}")


if __name__ == "__main__":
    main()
