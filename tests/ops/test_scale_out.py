"""The scale-out shape as one system: gunicorn with 2 workers and two `flask jobs worker` processes on PostgreSQL
and a (private) Redis, behind nginx with README's forward-auth block, signing in at the tenant emulator.

One test, in order: an SSO sign-in served by one gunicorn worker is verified by the other (the JSON access lines
name the pid); signing out ends it for every worker; a scheduled import due now is claimed once although two
`flask jobs tick` run at the same time; a job worker SIGKILLed mid-import is replaced, its run is marked failed
and the next run resumes on the other worker from the page where it stopped; Redis restarted under traffic gives
503 with Retry-After (never 500) while down and the gateway recovers by itself; a bounded load on /auth/verify
and the sign-in page gives no 5xx. nginx, redis-server and PostgreSQL come from tools/test-prereqs.sh."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask, jsonify
from flask import request as upstream_request
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

from emulator.server import EmulatorHandle
from tests.conftest import (
    POSTGRES_SERVER,
    TEST_FERNET_KEY,
    FreshGlobalsClient,
    _build_app,
    _migrate,
    make_user,
    sign_in,
)
from tests.o365_helpers import (
    authorize_datasource,
    create_datasource,
    datasource_named,
    emulator_env,
    sign_in_at_microsoft,
)
from tests.ops.servers import ROOT, SECRET_KEY, Gunicorn, Process, csrf_from, free_port, gateway_env, wait_for
from tests.sso_helpers import add_office365_provider, enable_sso

ADELE = "adele.vance@contoso.example"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
README = ROOT / "README.md"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    schema = f"s_{uuid.uuid4().hex[:12]}"
    engine = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_SERVER}?options=-csearch_path%3D{schema}"
    _migrate(url)
    yield url
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


class Redis:
    """A private redis-server, so this test may stop and restart it."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.tmp = tmp
        self.process: Process | None = None
        self.start()

    def start(self) -> None:
        self.process = Process(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(self.tmp)], {"PATH": "/usr/bin:/bin"},
                               self.tmp / "redis.log", cwd=self.tmp)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                                        text=True).stdout.strip() == "PONG", "redis answers", 20)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def _upstream() -> tuple[int, object]:
    app = Flask("upstream")

    @app.get("/<path:_path>")
    def echo(_path: str):  # type: ignore[no-untyped-def]
        return jsonify({k: v for k, v in upstream_request.headers.items() if k.lower().startswith("x-auth-request")})

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_port, server


def _nginx(tmp: Path, gateway_port: int, upstream_port: int) -> tuple[Process, int]:
    """README's block for app.example.com, and the gateway's own pages on the same port (default server)."""
    block = re.search(r"```nginx\n(.*?)```", README.read_text(), re.S)
    assert block, "the README shows an nginx configuration"
    port = free_port()
    app_server = block.group(1).replace("127.0.0.1:8000", f"127.0.0.1:{gateway_port}").replace(
        "127.0.0.1:9000", f"127.0.0.1:{upstream_port}").replace(
        "server_name app.example.com;", f"server_name app.example.com;\n    listen 127.0.0.1:{port};").replace(
        "/var/cache/nginx/", f"{tmp}/")
    gateway_server = (f"server {{\n listen 127.0.0.1:{port} default_server;\n location / {{\n"
                      f"  proxy_pass http://127.0.0.1:{gateway_port};\n  proxy_set_header Host $http_host;\n }}\n}}\n")
    (tmp / "nginx.conf").write_text(
        f"worker_processes 1;\nuser root;\ndaemon off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
        f"events {{}}\nhttp {{\n access_log off;\n{gateway_server}{app_server}\n}}\n")
    nginx = Process([NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf")], {"PATH": "/usr/bin:/bin"},
                    tmp / "nginx.log", cwd=tmp)
    wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200,
             "nginx passes to the gateway", 20, nginx.process, nginx.log)
    return nginx, port


def _access_lines(gateway: Gunicorn) -> list[dict]:
    lines = []
    for raw in gateway.output().splitlines():
        if raw.startswith("{") and '"gateway.access"' in raw:
            lines.append(json.loads(raw))
    return lines


def _verify(nginx_port: int, cookie: str | None) -> requests.Response:
    headers = {"Host": "app.example.com", **({"Cookie": f"gw_session={cookie}"} if cookie else {})}
    return requests.get(f"http://127.0.0.1:{nginx_port}/reports", headers=headers, allow_redirects=False, timeout=10)


def _runs(app: Flask) -> list:  # type: ignore[type-arg]
    from core.extensions import db
    from jobs.models import TaskRun

    db.session.expire_all()
    return list(db.session.scalars(db.select(TaskRun).order_by(TaskRun.id)))


def _flask(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_scale_out_shape_as_one_system(postgres_url: str, tmp_path: Path,  # noqa: C901, PLR0915
                                           sso_emulator: EmulatorHandle) -> None:
    from core.extensions import db
    from core.models import utcnow
    from jobs.models import ScheduledTask, TaskRun
    from jobs.queue import enqueue_run
    from jobs.runner import create_run

    redis = Redis(tmp_path)
    queue = f"scale-{uuid.uuid4().hex[:8]}"
    settings = {**emulator_env(sso_emulator), "REDIS_URL": redis.url, "JOBS_QUEUE_NAME": queue,
                "IMPORT_PAGE_SIZE": "5", "LOG_FORMAT": "json",
                # nginx's decision cache off: this test counts which worker verified each request and expects a
                # sign-out at once (the cache's own bound: tests/sso/test_nginx_forward_auth.py)
                "FORWARD_AUTH_CACHE_SECONDS": "0"}
    app = _build_app(postgres_url, tmp_path, ENV={"DATABASE_URL": postgres_url, "SECRET_KEY": SECRET_KEY,
                                                  "TOKEN_ENCRYPTION_KEYS": TEST_FERNET_KEY, **settings})
    processes: list[Process] = []
    upstream_port, upstream = _upstream()
    with app.app_context():
        from core.models import ensure_roles

        ensure_roles()
        make_user("admin@example.com", "scale-admin-password", "Administrator")
        app.test_client_class = FreshGlobalsClient  # the app context stays pushed: each request gets its own g
        admin = app.test_client()
        assert sign_in(admin, "admin@example.com", "scale-admin-password").status_code == 302
        create_datasource(admin, sso=True)
        authorize_datasource(admin, sso_emulator, datasource_named())
        datasource = datasource_named()
        enable_sso(create_users=True)
        add_office365_provider(datasource)
        try:
            env = gateway_env(postgres_url, tmp_path / "instance", **settings, JOBS_EMBEDDED_WORKER="0")
            gateway = Gunicorn(env, tmp_path / "gunicorn.log", workers=2, threads=2)
            processes.append(gateway)
            metrics_ports = [free_port(), free_port()]  # each job worker's own listener (loopback)
            workers = [Process([sys.executable, "-m", "flask", "--app", "app", "jobs", "worker", "--workers", "1",
                                "--metrics-port", str(metrics_port)], env, tmp_path / f"worker{i}.log")
                       for i, metrics_port in enumerate(metrics_ports)]
            processes += workers
            nginx, port = _nginx(tmp_path, gateway.port, upstream_port)
            processes.append(nginx)
            base = f"http://127.0.0.1:{port}"

            # 1. SSO sign-in through nginx; verified by the other gunicorn worker.
            browser = requests.Session()
            browser.trust_env = False
            start = browser.get(f"{base}/sso/login/contoso", allow_redirects=False, timeout=10)
            answer = sign_in_at_microsoft(sso_emulator, start.headers["Location"], ADELE, org_consent=False)
            callback = urlsplit(answer.headers["Location"])
            assert callback.path == "/sso/callback", answer.headers["Location"]
            assert browser.get(f"{base}/sso/callback?{callback.query}", allow_redirects=False,
                               timeout=10).status_code == 302
            cookie = browser.cookies["gw_session"]
            signed_in_by = next(line["pid"] for line in _access_lines(gateway) if line["route"] == "/sso/callback")
            with ThreadPoolExecutor(4) as pool:
                for _ in range(30):
                    codes = [r.status_code for r in pool.map(lambda _: _verify(port, cookie), range(8))]
                    assert codes == [200] * 8, (codes, gateway.output()[-3000:])
                    verifiers = {line["pid"] for line in _access_lines(gateway) if line["route"] == "/auth/verify"}
                    if verifiers - {signed_in_by}:
                        break
            assert verifiers - {signed_in_by}, "another worker verified the session"
            assert _verify(port, cookie).json()["X-Auth-Request-Email"] == ADELE

            # 2. Signing out on one worker ends the session for all.
            token = csrf_from(browser.get(f"{base}/", timeout=10).text)
            assert browser.post(f"{base}/logout", data={"csrf_token": token}, allow_redirects=False,
                                timeout=10).status_code == 302
            with ThreadPoolExecutor(4) as pool:
                assert {r.status_code for r in pool.map(lambda _: _verify(port, cookie), range(12))} == {302}

            # 3. A scheduled import due now, two ticks at once: claimed once. It is slow (a Graph delay), so ...
            requests.post(f"{sso_emulator.base_url}/_emulator/faults", verify=sso_emulator.ca_path, timeout=10,
                          headers={"Authorization": f"Bearer {sso_emulator.config['control_key']}"},
                          json={"kind": "delay", "delay_ms": 1500, "path": "/users/delta"}).raise_for_status()
            task = ScheduledTask(name="Import Contoso", kind=ScheduledTask.KIND_IMPORT, datasource_id=datasource.id,
                                 schedule="daily", owner="test", next_run_at=utcnow().replace(microsecond=0))
            db.session.add(task)
            db.session.commit()
            ticks = [_flask(env, "jobs", "tick") for _ in range(2)]  # besides the workers' own every-minute tick
            wait_for(lambda: any(run.task_id == task.id for run in _runs(app)), "the due run is claimed", 70)

            # 4. ... its worker is SIGKILLed mid-import; a replacement starts; the next run resumes elsewhere.
            def under_way() -> bool:
                run = next(r for r in _runs(app) if r.task_id == task.id)
                return run.status == TaskRun.RUNNING and run.pages >= 2

            wait_for(under_way, "the scheduled import is under way", 60)
            (scheduled,) = [run for run in _runs(app) if run.task_id == task.id]
            running = next(r for r in _runs(app) if r.id == scheduled.id)
            victim = next(w for w in workers if running.worker.endswith(f":{w.pid}"))
            victim.stop(signal.SIGKILL)
            outputs = [tick.communicate(timeout=60)[0] for tick in ticks]
            assert [tick.returncode for tick in ticks] == [0, 0], outputs
            assert [run.task_id for run in _runs(app)].count(task.id) == 1  # claimed once, by whichever tick
            replacement_port = free_port()
            replacement = Process([sys.executable, "-m", "flask", "--app", "app", "jobs", "worker", "--workers", "1",
                                   "--metrics-port", str(replacement_port)], env, tmp_path / "worker3.log")
            processes.append(replacement)
            assert _flask(env, "jobs", "tick").wait(60) == 0  # sweeps the run of the dead worker
            failed = next(r for r in _runs(app) if r.id == scheduled.id)
            assert failed.status == TaskRun.FAILED and "died" in failed.error and failed.pages >= 2
            resumed = create_run(kind=ScheduledTask.KIND_IMPORT, datasource_id=datasource.id, trigger="manual",
                                 actor="test")
            enqueue_run(resumed.id)
            wait_for(lambda: next(r for r in _runs(app) if r.id == resumed.id).done, "the next run finishes", 90)
            finished = next(r for r in _runs(app) if r.id == resumed.id)
            assert finished.status == TaskRun.SUCCEEDED, finished.error
            assert not finished.worker.endswith(f":{victim.pid}")
            ports = {worker.pid: port for worker, port in zip(workers, metrics_ports, strict=True)}
            ports[replacement.pid] = replacement_port
            runner = int(finished.worker.rpartition(":")[2])  # its Graph requests are on its own listener
            scraped = requests.get(f"http://127.0.0.1:{ports[runner]}/metrics", timeout=5).text
            assert re.search(r'gateway_graph_requests_total\{operation="GET /users/delta",status="200"\} [1-9]',
                             scraped), scraped[-2000:]
            users = sso_emulator.app.extensions["emulator.store"].conn().execute(
                "SELECT count(*) FROM users WHERE tenant_id = ?", (sso_emulator.tenant_id,)).fetchone()[0]
            assert finished.pages < -(-users // 5), (finished.pages, users)  # not again from the first page

            # 5. Redis restarted under traffic: 503 with Retry-After while down, then recovery by itself.
            fresh = requests.Session()
            fresh.trust_env = False
            assert fresh.get(f"{base}/login", timeout=10).status_code == 200
            seen: list[int] = []
            stopping = threading.Event()

            def traffic() -> None:  # a stranger's cookie: the store is asked each time
                while not stopping.is_set() and len(seen) < 2000:
                    seen.append(requests.get(f"{base}/auth/verify", headers={"Cookie": "gw_session=" + "a" * 43},
                                             timeout=15).status_code)

            background = threading.Thread(target=traffic)
            background.start()
            try:
                redis.stop()
                down = [requests.get(f"{base}/auth/verify", headers={"Cookie": "gw_session=" + "a" * 43},
                                     timeout=15) for _ in range(4)]
                assert {r.status_code for r in down} == {503} and all(r.headers.get("Retry-After") for r in down)
                redis.start()
                wait_for(lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200, "ready again", 30)
                assert requests.get(f"{base}/auth/verify", headers={"Cookie": "gw_session=" + "a" * 43},
                                    timeout=10).status_code == 401
            finally:
                stopping.set()
                background.join(30)
            assert set(seen) <= {401, 503} and 503 in seen, sorted(set(seen))

            # 6. A bounded load: /auth/verify (through nginx's auth_request) and the sign-in page, no 5xx.
            again = requests.Session()
            again.trust_env = False
            token = csrf_from(again.get(f"{base}/login", timeout=10).text)
            assert again.post(f"{base}/login", data={"email": "admin@example.com", "password": "scale-admin-password",
                                                     "csrf_token": token}, allow_redirects=False,
                              timeout=10).status_code == 302
            admin_cookie = again.cookies["gw_session"]

            def hit(i: int) -> int:
                if i % 4 == 0:
                    return requests.get(f"{base}/login", timeout=15).status_code
                return _verify(port, admin_cookie if i % 2 else None).status_code

            deadline = time.monotonic() + 20
            statuses: dict[int, int] = {}
            with ThreadPoolExecutor(8) as pool:
                done = 0
                while done < 1200 and time.monotonic() < deadline:
                    for status in pool.map(hit, range(done, done + 80)):
                        statuses[status] = statuses.get(status, 0) + 1
                    done += 80
            assert not [s for s in statuses if s >= 500], statuses
            assert statuses.get(200, 0) > 0 and statuses.get(302, 0) > 0
        finally:
            for process in reversed(processes):
                process.stop(signal.SIGTERM if process is not None else 0)
            redis.stop()
            upstream.shutdown()  # type: ignore[attr-defined]
            db.session.remove()
            db.engine.dispose()
