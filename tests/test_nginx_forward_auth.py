"""The README's nginx configuration, taken from the README itself, in front of a live gateway and a tiny upstream
app: signed out gives the sign-in redirect with the original URL, signed in reaches the app with the identity
headers. nginx (with auth_request) comes from tools/test-prereqs.sh; its absence is a failure, never a skip."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask, jsonify, request
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from tests.conftest import USER_EMAIL, USER_PASSWORD, LiveServer, sign_in

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def app_env() -> dict[str, str]:
    return {"ALLOWED_REDIRECT_DOMAINS": ".example.com", "PUBLIC_BASE_URL": "https://sso.example.com"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def upstream() -> Iterator[int]:
    app = Flask("upstream")

    @app.get("/<path:_path>")
    def echo(_path: str):  # type: ignore[no-untyped-def]
        return jsonify({k: v for k, v in request.headers.items() if k.lower().startswith("x-auth-request")})

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()


@pytest.fixture
def nginx(tmp_path: Path, live_server: LiveServer, upstream: int) -> Iterator[int]:
    block = re.search(r"```nginx\n(.*?)```", README.read_text(), re.S)
    assert block, "the README shows an nginx configuration"
    port = _free_port()
    gateway_port = live_server.url.rsplit(":", 1)[1]
    server = block.group(1).replace("127.0.0.1:8000", f"127.0.0.1:{gateway_port}").replace(
        "127.0.0.1:9000", f"127.0.0.1:{upstream}").replace(
        "server_name app.example.com;", f"server_name app.example.com;\n    listen 127.0.0.1:{port};")
    (tmp_path / "nginx.conf").write_text(
        f"worker_processes 1;\nuser root;\ndaemon off;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n access_log off;\n{server}\n}}\n")
    assert NGINX is not None, "nginx is not installed: run tools/test-prereqs.sh"
    process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode() if process.stderr else "nginx exited") from None
            time.sleep(0.1)
    else:
        process.kill()
        raise AssertionError("nginx did not start in 10 s")
    yield port
    process.terminate()
    process.wait(5)


def test_nginx_sends_strangers_to_sign_in_and_lets_signed_in_users_through(
        nginx: int, client: FlaskClient, plain_user) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{nginx}/reports?x=1"
    stranger = requests.get(url, headers={"Host": "app.example.com"}, allow_redirects=False, timeout=10)
    assert stranger.status_code == 302
    assert stranger.headers["Location"] == "https://sso.example.com/auth/start?rd=http://app.example.com/reports?x=1"

    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    cookie = client.get_cookie("gw_session").value
    for _ in range(2):  # the second one is answered by the fast path
        through = requests.get(url, headers={"Host": "app.example.com", "Cookie": f"gw_session={cookie}"},
                               allow_redirects=False, timeout=10)
        assert through.status_code == 200, through.text
        seen = {k.lower(): v for k, v in through.json().items()}
        assert seen["x-auth-request-email"] == USER_EMAIL and seen["x-auth-request-user"] == USER_EMAIL
        assert seen["x-auth-request-assertion"].count(".") == 2
