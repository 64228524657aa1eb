"""`make run`: the gateway on the embedded default, with the tenant emulator as its Office 365 tenant.

Starts `python -m emulator` (HTTPS, its own CA), points the gateway at it through the same settings a real
deployment uses (O365_AUTHORITY_HOST, GRAPH_API_URL, O365_CA_BUNDLE, O365_CLIENT_ID/SECRET), applies the
migrations, makes sure a demo administrator exists, prints how to sign in, and serves until Ctrl-C.
This is a launcher: the gateway's own code never imports the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
INSTANCE = Path(os.environ.get("INSTANCE_PATH") or ROOT / "instance")
DEMO_ADMIN = "admin@example.com"


def start_emulator(port: int, gateway_url: str) -> tuple[subprocess.Popen[str], dict]:
    data = INSTANCE / "emulator"
    command = [sys.executable, "-m", "emulator", "--port", str(port), "--data", str(data),
               "--redirect-uri", f"{gateway_url}/admin/datasources/authorize/callback",
               "--redirect-uri", f"{gateway_url}/sso/callback",
               "--redirect-uri", f"{gateway_url}/sso/signed-out",  # post_logout_redirect_uri of SSO sign-out
               "--front-channel-logout-url", f"{gateway_url}/sso/front-channel-logout"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("EMULATOR READY"):
            break
        if time.monotonic() > deadline:
            raise SystemExit("the tenant emulator did not start in time")
    else:
        raise SystemExit(f"the tenant emulator exited with code {process.wait()}")
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # keep the pipe drained
    return process, json.loads((data / "emulator.json").read_text())


def demo_admin_password() -> str:
    path = INSTANCE / "demo-admin-password"
    if not path.exists():
        INSTANCE.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(12))
    return path.read_text().strip()


def flask(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env, check=True,
                   input=stdin, text=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("GATEWAY_PORT", 5000)))
    parser.add_argument("--emulator-port", type=int, default=int(os.environ.get("EMULATOR_PORT", 8443)))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    gateway_url = f"http://127.0.0.1:{args.port}"
    emulator, facts = start_emulator(args.emulator_port, gateway_url)
    env = {
        **os.environ,
        "O365_AUTHORITY_HOST": facts["authority_host"],
        "GRAPH_API_URL": facts["graph_url"],
        "O365_CA_BUNDLE": facts["ca_bundle"],
        "O365_CLIENT_ID": facts["client_id"],
        "O365_CLIENT_SECRET": facts["client_secret"],
        "PUBLIC_BASE_URL": gateway_url,
    }
    try:
        flask(env, "db", "upgrade")
        password = demo_admin_password()
        flask(env, "users", "create-admin", DEMO_ADMIN, "--name", "Demo Admin", "--password-stdin",
              stdin=password + "\n")
        tenant = facts["tenants"][0]
        print(f"""
  Gateway ready:    {gateway_url}/
  Sign in as:       {DEMO_ADMIN} / {password}
  Emulated tenant:  {tenant['display_name']} ({tenant['domain']}, {tenant['id']}) at {facts['base_url']}
  Office 365 admin: admin@{tenant['domain']} / demo   (to Authorize a data source)
  Stop with Ctrl-C.
""", flush=True)
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{args.port}", "--workers", str(args.workers),
             "--threads", "4", "--access-logfile", "-", "app:create_app()"], cwd=ROOT, env=env)
        signal.signal(signal.SIGTERM, lambda *_: gunicorn.terminate())
        gunicorn.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.terminate()
        emulator.wait(10)


if __name__ == "__main__":
    main()
