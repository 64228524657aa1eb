"""A static app through nginx: unprotected, protected by README's forward-auth block (auth_request to the gateway's
/auth/verify), and protected with the block's decision cache (issue 15, point 7), measured in one run.

One nginx (Debian's /usr/sbin/nginx) serves the same small static file on three ports: without auth_request, with
README's block minus its three decision-cache lines, and with README's block as it is (the gateway's
X-Accel-Expires, FORWARD_AUTH_CACHE_SECONDS, 5 s by default, bounds the reuse). The gateway runs under gunicorn
(bench_forward_auth's command and signed-in session, SQLite or --redis), and `wrk` (Debian's package; installed
here with apt-get when missing and run as root) loads each port with the same session cookie, in alternating
rounds; the median round is printed with its p99, and the ratios to unprotected (target with the cache >= 0.5).
Load stays on loopback, bounded in time. Every answer must be a 200: a sign-in redirect would not be measuring
the protected app.

Measured 2026-12-04 (2 cores shared with other helpers' test runs, load average 7-13 during the run; defaults:
wrk -t2 -c32, 3 rounds of 5 s, SQLite sessions, FORWARD_AUTH_CACHE_SECONDS=5):

    unprotected           124064 req/s  p99   13.39 ms   1.00x unprotected
    protected               4002 req/s  p99   33.44 ms   0.03x unprotected
    protected + cache      70368 req/s  p99   14.85 ms   0.57x unprotected

With --redis (same load; p99s of 44-57 ms show the neighbours): 120859, 2084 and 74151 req/s, 0.61x with the cache.

    .venv/bin/python bench/bench_protected_app.py [--connections 32] [--threads 2] [--seconds 5] [--rounds 3]
        [--nginx-workers 2] [--workers 2] [--gunicorn-threads 4] [--cache-seconds 5] [--redis redis://...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_forward_auth import FERNET, free_port, gunicorn, prepare_gateway, stop, wait_ready  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
README = ROOT / "README.md"
CACHE_LINES = ("proxy_cache gateway_decisions;", "proxy_cache_key ", "proxy_ignore_headers ")
PAGE = "<!doctype html><title>Static app</title><h1>Quarterly reports</h1>" + "<p>Figures.</p>" * 30 + "\n"
CONFIGURATIONS = ("unprotected", "protected", "protected + cache")


def readme_block() -> str:
    block = re.search(r"```nginx\n(.*?)```", README.read_text(), re.S)
    if block is None:
        raise SystemExit("README.md has no nginx block")
    return block.group(1)


def app_servers(gateway_port: int, static: Path, cache: Path, ports: dict[str, int]) -> str:
    """Three server blocks for app.example.com, one per configuration, each serving `static` as the app."""
    block = readme_block().replace("127.0.0.1:8000", f"127.0.0.1:{gateway_port}").replace(
        "/var/cache/nginx/", f"{cache}/").replace("proxy_pass http://127.0.0.1:9000;", f"root {static};")
    zone, _, server = block.partition("\nserver {")
    if "proxy_cache_path" not in zone or "proxy_cache gateway_decisions;" not in server:
        raise SystemExit("README's nginx block has no decision cache (proxy_cache_path, proxy_cache)")
    server = "server {" + server.rstrip()
    uncached = "\n".join(line for line in server.splitlines() if not line.strip().startswith(CACHE_LINES))
    unprotected = (f"server {{\n    server_name app.example.com;\n    location / {{\n        root {static};\n"
                   f"    }}\n}}")
    blocks = {"unprotected": unprotected, "protected": uncached, "protected + cache": server}
    listen = "server_name app.example.com;"
    return zone.strip() + "\n" + "\n".join(
        blocks[name].replace(listen, f"{listen}\n    listen 127.0.0.1:{ports[name]};") for name in CONFIGURATIONS)


def start_nginx(folder: Path, servers: str, workers: int) -> subprocess.Popen:
    conf = folder / "nginx.conf"
    conf.write_text(f"worker_processes {workers};\nuser root;\ndaemon off;\npid {folder}/nginx.pid;\n"
                    f"error_log {folder}/error.log;\nevents {{ worker_connections 4096; }}\n"
                    f"http {{\n access_log off;\n{servers}\n}}\n")
    if not Path(NGINX).exists():
        raise SystemExit("nginx is not installed: apt-get install nginx-light (tools/test-prereqs.sh does it)")
    return subprocess.Popen([NGINX, "-p", str(folder), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is not installed: sudo apt-get install wrk")
    print("installing wrk (Debian's package) ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk") or "/usr/bin/wrk"


def fetch(port: int, cookie: str) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/index.html",
                                     headers={"Host": "app.example.com", "Cookie": f"gw_session={cookie}"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def wait_for_nginx(port: int, process: subprocess.Popen, folder: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = folder / "error.log"
            raise SystemExit("nginx exited: " + (log.read_text()[-2000:] if log.exists() else "no log"))
        try:
            fetch(port, "")
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("nginx did not start in 10 s")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(wrk: str, port: int, cookie: str, args: argparse.Namespace, seconds: float) -> dict:
    """One wrk run: requests/s, p99 in ms, requests, and non-2xx/3xx answers."""
    out = subprocess.run([wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds:g}s",
                          "--latency", "-H", "Host: app.example.com", "-H", f"Cookie: gw_session={cookie}",
                          f"http://127.0.0.1:{port}/index.html"], capture_output=True, text=True, check=True,
                         timeout=seconds + 60).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p99 and total):
        raise SystemExit(f"wrk's output was not understood:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(rps.group(1)), "p99": float(p99.group(1)) * UNITS[p99.group(2)],
            "n": int(total.group(1)), "bad": int(bad.group(1)) if bad else 0,
            "errors": errors.group(1).strip() if errors else ""}


def bench(args: argparse.Namespace) -> None:
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/bench.db", "SECRET_KEY": "bench-" + "k" * 40,
               "TOKEN_ENCRYPTION_KEYS": FERNET, "INSTANCE_PATH": tmp,
               "FORWARD_AUTH_CACHE_SECONDS": str(args.cache_seconds)}
        if args.redis:
            env["REDIS_URL"] = args.redis
        cookie = prepare_gateway(env, 0)  # bench@example.com: README's block allows example.com addresses
        static = folder / "static"
        static.mkdir()
        (static / "index.html").write_text(PAGE)
        (folder / "cache").mkdir()
        gateway_port = free_port()
        ports = {name: free_port() for name in CONFIGURATIONS}
        gateway = gunicorn("app:create_app()", gateway_port, args.workers, args.gunicorn_threads, env, ROOT)
        nginx = None
        try:
            wait_ready(gateway_port)
            nginx = start_nginx(folder, app_servers(gateway_port, static, folder / "cache", ports),
                                args.nginx_workers)
            for name in CONFIGURATIONS:
                wait_for_nginx(ports[name], nginx, folder)
                status, body = fetch(ports[name], cookie)
                if status != 200 or body != PAGE:
                    raise SystemExit(f"{name}: the static app answered {status}, not the page")
            if fetch(ports["protected"], "x" * 43)[0] != 302:
                raise SystemExit("protected: a visitor without a session was not sent to sign in")
            rounds: dict[str, list[dict]] = {name: [] for name in CONFIGURATIONS}
            for name in CONFIGURATIONS:  # warm-up: connections, keys, the compiled policy
                run_wrk(wrk, ports[name], cookie, args, 1)
            for number in range(args.rounds):  # alternating order: a busy neighbour slows each alike
                order = CONFIGURATIONS if number % 2 == 0 else CONFIGURATIONS[::-1]
                for name in order:
                    rounds[name].append(run_wrk(wrk, ports[name], cookie, args, args.seconds))
            for name in CONFIGURATIONS:  # wrk counts only 4xx/5xx as errors: the session must still let us in
                if fetch(ports[name], cookie)[0] != 200:
                    raise SystemExit(f"{name}: after the load the session no longer reached the app")
        finally:
            if nginx is not None:
                nginx.terminate()
                nginx.wait(10)
            stop(gateway)
    report(rounds, args)


def report(rounds: dict[str, list[dict]], args: argparse.Namespace) -> None:
    results = {}
    for name, runs in rounds.items():
        middle = sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]
        results[name] = {**middle, "p99": statistics.median(run["p99"] for run in runs),
                         "n": sum(run["n"] for run in runs), "bad": sum(run["bad"] for run in runs),
                         "errors": "; ".join(run["errors"] for run in runs if run["errors"])}
    base = results["unprotected"]["rps"]
    for name, result in results.items():
        extra = f", {result['bad']} not 2xx/3xx" if result["bad"] else ""
        extra += f", socket errors: {result['errors']}" if result["errors"] else ""
        print(f"{name:18} {result['rps']:9.0f} req/s  p99 {result['p99']:7.2f} ms  {result['rps'] / base:5.2f}x "
              f"unprotected  ({result['n']} requests{extra})")
    cached = results["protected + cache"]["rps"] / base
    print(f"ratio with the decision cache: {cached:.2f}x unprotected (target >= 0.5: "
          f"{'OK' if cached >= 0.5 else 'MISSED'}); without it {results['protected']['rps'] / base:.2f}x")
    print(f"decision reuse bound: FORWARD_AUTH_CACHE_SECONDS={args.cache_seconds} (a sign-out or revocation "
          f"reaches a cached allow within it, plus nginx's rounding to the second)")
    print(f"setup: wrk -t{args.threads} -c{args.connections}, {args.rounds} alternating rounds of {args.seconds:g} s "
          f"(median), nginx {args.nginx_workers} workers, gateway gunicorn -w {args.workers} --threads "
          f"{args.gunicorn_threads} ({'Redis' if args.redis else 'SQLite'} sessions), README's nginx block, "
          f"{os.cpu_count()} CPUs shared by wrk, nginx and the gateway")
    if any(result["bad"] for result in results.values()):
        raise SystemExit("some answers were not 2xx/3xx: the figures above do not measure the protected app")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per round and configuration")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    parser.add_argument("--nginx-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workers", type=int, default=2, help="gateway gunicorn workers")
    parser.add_argument("--gunicorn-threads", type=int, default=4)
    parser.add_argument("--cache-seconds", type=int, default=5, help="FORWARD_AUTH_CACHE_SECONDS (0-30)")
    parser.add_argument("--redis", help="Redis sessions, e.g. redis://127.0.0.1:6379/0")
    bench(parser.parse_args())


if __name__ == "__main__":
    main()
