"""README's first command: the launcher serves the gateway with the emulated tenant, and the demo admin can sign in."""

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_make_run_serves_the_gateway_and_the_demo_admin_signs_in(tmp_path: Path) -> None:
    port, emulator_port = _free_port(), _free_port()
    env = {**os.environ, "INSTANCE_PATH": str(tmp_path / "instance")}
    process = subprocess.Popen([sys.executable, "devserver.py", "--port", str(port), "--emulator-port",
                                str(emulator_port), "--workers", "1"], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()  # type: ignore[arg-type]
    try:
        session = requests.Session()
        session.trust_env = False
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if session.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or a loaded machine
                time.sleep(0.5)
        output = "".join(lines)
        match = re.search(r"Sign in as:\s+(\S+) / (\S+)", output)
        assert match, output
        assert f"Gateway ready:    http://127.0.0.1:{port}/" in output
        assert "Office 365 admin: admin@contoso.example / demo" in output
        page = session.get(f"http://127.0.0.1:{port}/login").text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        signed_in = session.post(f"http://127.0.0.1:{port}/login", allow_redirects=False,
                                 data={"email": match.group(1), "password": match.group(2), "csrf_token": token})
        assert signed_in.status_code == 302, signed_in.text[signed_in.text.find("<main"):][:1500]
        admin = session.get(f"http://127.0.0.1:{port}/admin/")
        assert admin.status_code == 200 and "Administration" in admin.text
        facts = (tmp_path / "instance" / "emulator" / "emulator.json").read_text()
        assert f"https://127.0.0.1:{emulator_port}" in facts
    finally:
        os.killpg(process.pid, 15)
        process.wait(20)
