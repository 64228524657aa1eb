"""Real processes for the operations tests: gunicorn serving the gateway, `flask jobs worker`, Prometheus, nginx.

Each is started on a free loopback port with its output drained into a file (a full pipe would block it), waited
for with a deadline, and stopped by its own pid."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "test-secret-key-0123456789-abcdefghijkl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, seconds: float = 30.0, process: subprocess.Popen | None = None,
             log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited ({process.returncode})\n{_tail(log)}")
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} within {seconds:g} s\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""


class Process:
    """A child process whose output goes to `log`."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> None:
        self.log = log
        self.handle = log.open("ab")
        self.process = subprocess.Popen(command, env=env, cwd=cwd, stdout=self.handle, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.handle.close()


def gateway_env(database_url: str, instance: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PROMETHEUS_"))}
    env.update({"DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY, "INSTANCE_PATH": str(instance),
                "TOKEN_ENCRYPTION_KEYS": "x1vUJ3GXj4gWn3LkqOFd6V5Oq6l2sHfQ0t0Zf2J8m1c=", **extra})
    return env


class Gunicorn(Process):
    """gunicorn from the checkout's root, as README says (so gunicorn.conf.py is read)."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 2, threads: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads),
                          "-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "5", "app:create_app()"], env, log)
        wait_for(lambda: requests.get(f"{self.url}/healthz", timeout=2).status_code == 200,
                 "gunicorn answers /healthz", 60, self.process, log)

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return sorted(int(pid) for pid in children)


def csrf_from(page: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, "the page carries a CSRF token"
    return match.group(1)


def password_sign_in(base_url: str, email: str, password: str) -> requests.Session:
    """Sign in through the real form; the session holds the gw_session cookie."""
    session = requests.Session()
    session.trust_env = False
    token = csrf_from(session.get(f"{base_url}/login", timeout=10).text)
    answer = session.post(f"{base_url}/login", data={"email": email, "password": password, "csrf_token": token},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:1000]
    return session
