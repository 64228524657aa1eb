"""The scale-out shape's forward-auth capacity: `GET /auth/verify` with a valid session on PostgreSQL + Redis,
served by gunicorn with 1, 2 and 4 workers, next to a bare Flask endpoint under the same gunicorn settings, and
the cost of metrics (the same gateway with METRICS=1 and METRICS=0; target on / off >= 0.95).

Load comes from client processes on loopback, bounded in count and time (bench_forward_auth's client); rounds
alternate between the servers compared, so a busy neighbour slows both alike; the median round is printed.

    .venv/bin/python bench/bench_scale.py [--workers 1,2,4] [--threads 4] [--clients 4] [--seconds 6]
        [--rounds 3] [--postgres postgresql+psycopg://127.0.0.1:5432/test] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_forward_auth import BARE_APP, FERNET, free_port, gunicorn, load, prepare_gateway, stop, wait_ready  # noqa: E402


def median_round(runs: list[dict]) -> dict:
    middle = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    statuses: dict[int, int] = {}
    for run in runs:
        for code, count in run["statuses"].items():
            statuses[code] = statuses.get(code, 0) + count
    return {**middle, "p99": statistics.median(r["p99"] for r in runs), "statuses": statuses,
            "n": sum(r["n"] for r in runs)}


def compare(servers: dict[str, tuple[str, Path, dict[str, str]]], workers: int, args: argparse.Namespace,
            cookie: str) -> dict[str, dict]:
    """Start each server (gunicorn -w workers), load them in alternating rounds, stop them."""
    running = {}
    try:
        for name, (spec, cwd, env) in servers.items():
            port = free_port()
            running[name] = (port, gunicorn(spec, port, workers, args.threads, env, cwd))
        for port, _ in running.values():
            wait_ready(port)
            load(port, cookie, args.clients, 1.0, 2000)  # warm-up: keys, settings, connections
        rounds: dict[str, list[dict]] = {name: [] for name in running}
        for number in range(args.rounds):  # the order flips each round: neither side always goes first
            for name, (port, _) in (list(running.items()) if number % 2 == 0 else list(running.items())[::-1]):
                rounds[name].append(load(port, cookie, args.clients, args.seconds / args.rounds, 10**7))
    finally:
        for _, proc in running.values():
            stop(proc)
    return {name: median_round(runs) for name, runs in rounds.items()}


def line(name: str, result: dict) -> str:
    return (f"{name:28} {result['rps']:7.0f} req/s  p99 {result['p99']:6.2f} ms  "
            f"({result['n']} requests, statuses {result['statuses']})")


def metrics_work_per_request() -> float:
    """Microseconds of what metrics add to one /auth/verify (the two clock reads and the tally), counted in a
    child process in multiprocess mode, as under gunicorn."""
    code = ("import time, timeit; from observability import metrics, tracing\n"
            "def one():\n    started = time.perf_counter(); tracing.now_ns()\n"
            "    policy = metrics.policy_label({}, {})\n"
            "    metrics.forward_auth_decision('allowed', policy, time.perf_counter() - started)\n"
            "n = 200000; print(timeit.timeit(one, number=n) / n * 1e6)")
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                             env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder, "PYTHONPATH": str(ROOT)})
    return float(out.stdout.strip())


def sign_ins(env: dict[str, str], workers: int, args: argparse.Namespace) -> None:
    """Password sign-ins per second (the sign-in page, then the form; the password hash dominates)."""
    import re
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from app import create_app
    from core.extensions import db
    from core.models import User

    with create_app().app_context():
        user = User(email="signin@example.com", display_name="Sign In")
        user.set_password("bench-sign-in-password")
        db.session.add(user)
        db.session.commit()
        db.engine.dispose()
    port = free_port()
    proc = gunicorn("app:create_app()", port, workers, args.threads, env, ROOT)

    def one(_: int) -> int:
        session = requests.Session()
        session.trust_env = False
        page = session.get(f"http://127.0.0.1:{port}/login", timeout=30).text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        return session.post(f"http://127.0.0.1:{port}/login", allow_redirects=False, timeout=30, data={
            "email": "signin@example.com", "password": "bench-sign-in-password", "csrf_token": token}).status_code

    try:
        wait_ready(port)
        one(0)
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            statuses = list(pool.map(one, range(args.sign_ins)))
        elapsed = time.perf_counter() - start
    finally:
        stop(proc)
    print(f"-- password sign-ins, gunicorn -w {workers} --threads {args.threads}, {args.clients} clients")
    print(f"sign-ins                     {len(statuses) / elapsed:7.1f} /s  ({len(statuses)} sign-ins, "
          f"{statuses.count(302)} signed in)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql+psycopg://127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--sign-ins", type=int, default=120, help="password sign-ins for the sign-ins/s figure")
    parser.add_argument("--phases", default="verify,metrics,signins")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "DATABASE_URL": f"{args.postgres}?options=-csearch_path%3D{schema}",
                   "REDIS_URL": args.redis, "SECRET_KEY": "bench-" + "k" * 40, "TOKEN_ENCRYPTION_KEYS": FERNET,
                   "INSTANCE_PATH": tmp, "JOBS_QUEUE_NAME": f"bench-{schema}", "METRICS_TOKEN": "bench-" + "m" * 20}
            cookie = prepare_gateway(env)
            Path(tmp, "bare_app.py").write_text(BARE_APP)
            bare = ("bare_app:app", Path(tmp), {**env, "PYTHONPATH": str(ROOT)})
            gateway = ("app:create_app()", ROOT, env)
            per_worker = {}
            for workers in [int(n) for n in args.workers.split(",") if n and "verify" in phases]:
                results = compare({"bare Flask": bare, "/auth/verify": gateway}, workers, args, cookie)
                per_worker[workers] = results["/auth/verify"]["rps"] / workers
                print(f"-- gunicorn -w {workers} --threads {args.threads}")
                for name, result in results.items():
                    print(line(name, result))
                ratio = results["/auth/verify"]["rps"] / results["bare Flask"]["rps"]
                print(f"   /auth/verify : bare = {ratio:.2f}")
            workers = 2
            if "signins" in phases:
                sign_ins(env, workers, args)
            if "metrics" not in phases:
                return
            results = compare({"metrics on (METRICS=1)": gateway,
                               "metrics off (METRICS=0)": ("app:create_app()", ROOT, {**env, "METRICS": "0"})},
                              workers, args, cookie)
            print(f"-- metrics cost, gunicorn -w {workers} --threads {args.threads}")
            for name, result in results.items():
                print(line(name, result))
            ratio = results["metrics on (METRICS=1)"]["rps"] / results["metrics off (METRICS=0)"]["rps"]
            print(f"metrics on / off = {ratio:.2f} (target >= 0.95: {'OK' if ratio >= 0.95 else 'MISSED'})")
            cost = metrics_work_per_request()
            per_request = workers / results["metrics off (METRICS=0)"]["rps"] * 1e6
            print(f"metrics work per /auth/verify: {cost:.2f} us in multiprocess mode, {cost / per_request:.2%} of a "
                  f"request's {per_request:.0f} us of worker time (the implied ratio {1 - cost / per_request:.3f}; "
                  "the load ratio above also carries the machine's noise)")
            if per_worker:
                print("per worker: " + ", ".join(f"{n} worker(s) {rps:.0f} req/s each"
                                                 for n, rps in per_worker.items()))
            print(f"setup: PostgreSQL + Redis session store, {args.clients} client processes, median of "
                  f"{args.rounds} alternating rounds of {args.seconds / args.rounds:.1f} s, {os.cpu_count()} CPUs, "
                  f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
