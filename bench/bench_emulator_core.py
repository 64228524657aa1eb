"""Benchmark the tenant emulator: `--users 100000` startup time and per-request latency of the Entra pages,
the token endpoint and a 999-user Graph page. Run: `.venv/bin/python bench/bench_emulator_core.py [--users N]`.

Prints a JSON summary (and writes it to bench/results/emulator_core.json)."""

from __future__ import annotations

import argparse
import html
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]


def start(data: str, users: int) -> tuple[subprocess.Popen, float]:
    begin = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "--port", "0", "--data", data, "--users", str(users),
                             "--reset"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ready: queue.Queue[float] = queue.Queue()

    def drain(stream, watch: bool) -> None:
        for line in stream:
            if watch and line.startswith("EMULATOR READY"):
                ready.put(time.perf_counter() - begin)

    threading.Thread(target=drain, args=(proc.stdout, True), daemon=True).start()
    threading.Thread(target=drain, args=(proc.stderr, False), daemon=True).start()
    return proc, ready.get(timeout=120)


def timed(fn, n: int) -> dict:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return {"n": n, "median_ms": round(statistics.median(samples), 2),
            "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2), "max_ms": round(samples[-1], 2)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        proc, startup = start(data, args.users)
        try:
            cfg = json.loads((Path(data) / "emulator.json").read_text())
            http = requests.Session()
            http.trust_env = False
            http.verify = cfg["ca_bundle"]
            base, tid, domain = cfg["base_url"], cfg["tenants"][0]["id"], cfg["tenants"][0]["domain"]
            form = {"client_id": cfg["client_id"], "client_secret": cfg["client_secret"],
                    "grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"}

            def token() -> str:
                r = http.post(f"{base}/{tid}/oauth2/v2.0/token", data=form)
                r.raise_for_status()
                return r.json()["access_token"]

            bearer = {"Authorization": f"Bearer {token()}"}
            next_link = [f"{base}/v1.0/users?$top=999"]

            def page() -> None:
                r = http.get(next_link[0], headers=bearer)
                r.raise_for_status()
                body = r.json()
                assert len(body["value"]) == 999
                next_link[0] = body.get("@odata.nextLink") or f"{base}/v1.0/users?$top=999"

            query = {"client_id": cfg["client_id"], "response_type": "code", "scope": "openid profile",
                     "redirect_uri": cfg["redirect_uris"][0], "state": "s", "nonce": "n"}
            browser = requests.Session()
            browser.trust_env = False
            browser.verify = cfg["ca_bundle"]
            code_query = dict(query, scope="openid profile offline_access https://graph.microsoft.com/User.Read")
            first = browser.get(f"{base}/{tid}/oauth2/v2.0/authorize", params=code_query, allow_redirects=False)
            ctx = html.unescape(re.search(r'name="ctx" value="([^"]*)"', first.text).group(1))
            signin = browser.post(f"{base}/{tid}/login", allow_redirects=False, data={
                "ctx": ctx, "kind": "authorize", "action": "password", "username": f"adele.vance@{domain}",
                "password": "demo"})
            if signin.status_code == 200:  # consent page
                browser.post(f"{base}/{tid}/consent", data={"ctx": ctx, "kind": "authorize", "action": "accept"},
                             allow_redirects=False)

            def sso_code_and_redeem() -> None:
                r = browser.get(f"{base}/{tid}/oauth2/v2.0/authorize", params=code_query, allow_redirects=False)
                code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
                t = http.post(f"{base}/{tid}/oauth2/v2.0/token", data={
                    "client_id": cfg["client_id"], "client_secret": cfg["client_secret"],
                    "grant_type": "authorization_code", "code": code, "redirect_uri": query["redirect_uri"]})
                t.raise_for_status()

            results = {
                "users": args.users,
                "startup_s": round(startup, 2),
                "discovery": timed(lambda: http.get(f"{base}/{tid}/v2.0/.well-known/openid-configuration"), 50),
                "signin_page": timed(lambda: http.get(f"{base}/{tid}/oauth2/v2.0/authorize", params=query,
                                                      allow_redirects=False), 50),
                "token_client_credentials": timed(token, 50),
                "graph_users_page_999": timed(page, 30),
                "sso_authorize_plus_code_redemption": timed(sso_code_and_redeem, 30),
            }
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "emulator_core.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
