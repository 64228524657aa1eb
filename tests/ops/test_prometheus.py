"""Debian's Prometheus server scrapes the gateway under gunicorn with 2 workers (multiprocess mode, gunicorn.conf.py)
and a PromQL query through its HTTP API returns exactly the forward-auth decisions this test made, also after a
worker was killed and replaced. Prometheus comes from tools/test-prereqs.sh; its absence is a failure."""

from __future__ import annotations

import os
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import USER_EMAIL, USER_PASSWORD
from tests.ops.servers import Gunicorn, Process, free_port, gateway_env, password_sign_in, wait_for

TOKEN = "prometheus-scrape-token-0123"
PROMETHEUS = shutil.which("prometheus")


def _verify(base: str, cookie: str | None, query: str) -> int:
    headers = {"Cookie": f"gw_session={cookie}"} if cookie else {}
    return requests.get(f"{base}/auth/verify{query}", headers=headers, timeout=10).status_code


def _counting_workers(folder: Path) -> int:
    """How many processes' counter files hold forward-auth decisions (each worker tallies, then flushes each second)."""
    from prometheus_client.mmap_dict import MmapedDict

    return sum(1 for path in folder.glob("counter_*.db") if any(
        "gateway_forward_auth_decisions" in key for key, *_ in MmapedDict.read_all_values_from_file(str(path))))


def _promql(base: str, query: str) -> dict[str, float]:
    answer = requests.get(f"{base}/api/v1/query", params={"query": query}, timeout=5).json()
    assert answer["status"] == "success", answer
    return {result["metric"].get("outcome", ""): float(result["value"][1]) for result in answer["data"]["result"]}


@pytest.mark.one_backend
def test_prometheus_scrapes_the_counts_of_two_workers(database_url: str, tmp_path: Path, plain_user) -> None:  # type: ignore[no-untyped-def]
    assert PROMETHEUS is not None, "prometheus is not installed: run tools/test-prereqs.sh"
    multiproc = tmp_path / "metrics"
    gateway = Gunicorn(gateway_env(database_url, tmp_path / "instance", METRICS_TOKEN=TOKEN,
                                   PROMETHEUS_MULTIPROC_DIR=str(multiproc), JOBS_EMBEDDED_WORKER="0"),
                       tmp_path / "gunicorn.log", workers=2, threads=2)
    prometheus = None
    try:
        cookie = password_sign_in(gateway.url, USER_EMAIL, USER_PASSWORD).cookies["gw_session"]
        sent = {"allowed": 0, "denied": 0, "not_signed_in": 0}
        calls = [(cookie, "?allowed_domains=example.com", "allowed")] * 6 + [
            (cookie, "?allowed_emails=nobody@example.org", "denied")] * 2 + [(None, "", "not_signed_in")] * 3
        with ThreadPoolExecutor(8) as pool:
            for _round in range(20):  # until both workers have counted (each writes its own counter file)
                codes = list(pool.map(lambda call: _verify(gateway.url, call[0], call[1]), calls))
                assert sorted(codes) == sorted({"allowed": 200, "denied": 403, "not_signed_in": 401}[c[2]]
                                               for c in calls)
                for call in calls:
                    sent[call[2]] += 1
                try:
                    wait_for(lambda: _counting_workers(multiproc) == 2, "both workers counted", 3)
                    break
                except AssertionError:
                    continue
        assert _counting_workers(multiproc) == 2, "both workers served forward-auth requests"

        port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: gateway\n    metrics_path: /metrics\n"
            f"    authorization:\n      type: Bearer\n      credentials: {TOKEN}\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{gateway.port}']\n")
        prometheus = Process([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                              f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                             {"PATH": "/usr/bin:/bin"}, tmp_path / "prometheus.log", cwd=tmp_path)
        api = f"http://127.0.0.1:{port}"
        query = "sum by (outcome) (gateway_forward_auth_decisions_total)"
        wait_for(lambda: _promql(api, query) == {k: float(v) for k, v in sent.items()},
                 f"Prometheus reports {sent}", 60, prometheus.process, prometheus.log)
        assert _promql(api, 'sum by (outcome) (gateway_sign_ins_total{provider="local"})') == {"success": 1.0}

        # A worker dies: its counts stay, its replacement counts on.
        victim = gateway.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(gateway.worker_pids()) == 2 and victim not in gateway.worker_pids(),
                 "gunicorn replaces the killed worker", 30, gateway.process, gateway.log)
        assert _verify(gateway.url, cookie, "?allowed_domains=example.com") == 200
        sent["allowed"] += 1
        wait_for(lambda: _promql(api, query) == {k: float(v) for k, v in sent.items()},
                 f"Prometheus reports {sent} after a worker died", 60, prometheus.process, prometheus.log)
    finally:
        if prometheus is not None:
            prometheus.stop()
        gateway.stop()
