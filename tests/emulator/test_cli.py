"""`python -m emulator` starts, prints its facts and the ready line; `ctl` verbs drive it."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.cli import ctl_parser, ctl_request
from tests.emulator.support import https_session

ROOT = Path(__file__).resolve().parents[2]


class Running:
    def __init__(self, proc: subprocess.Popen, lines: list[str], data: Path) -> None:
        self.proc, self.lines, self.data = proc, lines, data

    def ctl(self, *args: str) -> tuple[int, dict | str]:
        out = subprocess.run([sys.executable, "-m", "emulator", "ctl", "--data", str(self.data), *args],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)
        try:
            return out.returncode, json.loads(out.stdout)
        except ValueError:
            return out.returncode, out.stdout + out.stderr


def start(data: Path, *args: str, timeout: float = 30) -> Running:
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "--port", "0", "--data", str(data), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    ready: queue.Queue[str] = queue.Queue()

    def drain(stream, keep: bool) -> None:
        for line in stream:
            if keep:
                lines.append(line.rstrip("\n"))
                if line.startswith("EMULATOR READY "):
                    ready.put(line.strip())

    threading.Thread(target=drain, args=(proc.stdout, True), daemon=True).start()
    threading.Thread(target=drain, args=(proc.stderr, False), daemon=True).start()
    try:
        ready.get(timeout=timeout)
    except queue.Empty:
        proc.kill()
        raise AssertionError(f"no ready line; output: {lines}") from None
    return Running(proc, lines, data)


def stop(running: Running) -> None:
    running.proc.terminate()
    try:
        running.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        running.proc.kill()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    proc = start(tmp_path_factory.mktemp("cli"), "--redirect-uri", "http://localhost/cb",
                 "--client-id", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "--client-secret", "cli-secret")
    yield proc
    stop(proc)


def test_start_prints_facts_ready_line_and_config(running: Running) -> None:
    config = json.loads((running.data / "emulator.json").read_text())
    base = config["base_url"]
    assert base.startswith("https://127.0.0.1:") and not base.endswith(":0")
    assert running.lines[-1] == f"EMULATOR READY {base}"
    text = "\n".join(running.lines)
    assert f"Base URL: {base}" in text and f"Graph URL: {base}/v1.0" in text
    assert f"Tenant: {config['tenants'][0]['id']} contoso.example (Contoso)" in text
    assert "Client ID: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" in text and "Client secret: cli-secret" in text
    assert "Demo sign-in: admin@contoso.example (Global Administrator)" in text
    assert f"Control key: {config['control_key']}" in text and f"CA bundle: {config['ca_bundle']}" in text
    assert set(config) >= {"base_url", "authority_host", "graph_url", "tenants", "ca_bundle", "client_id",
                           "client_secret", "control_key"}
    assert config["graph_url"] == base + "/v1.0" and config["redirect_uris"] == ["http://localhost/cb"]
    resp = https_session(config["ca_bundle"]).get(
        f"{base}/{config['tenants'][0]['id']}/v2.0/.well-known/openid-configuration")
    assert resp.status_code == 200


def test_ctl_verbs(running: Running) -> None:
    code, status = running.ctl("status")
    assert code == 0 and status["ok"] is True
    code, fault = running.ctl("fault", "throttle", "--every", "2", "--retry-after", "5")
    assert code == 0 and fault["kind"] == "throttle" and fault["every"] == 2 and fault["retry_after"] == 5
    code, faults = running.ctl("faults")
    assert [f["id"] for f in faults["faults"]] == [fault["id"]]
    assert running.ctl("clear-faults")[1] == {"removed": 1}
    code, clock = running.ctl("clock", "--shift", "120")
    assert code == 0 and clock["offset"] == 120
    assert running.ctl("clock", "--reset")[1]["offset"] == 0
    assert running.ctl("expire-delta")[1]["delta_epoch"] == 1
    assert running.ctl("rotate-keys")[1]["active_kid"]
    code, counters = running.ctl("counters")
    assert code == 0 and "counters" in counters
    code, user = running.ctl("user-create", json.dumps({"displayName": "Cli User", "accountEnabled": True,
                                                          "userPrincipalName": "cli.user@contoso.example",
                                                          "mailNickname": "cli.user"}))
    assert code == 0 and user["userPrincipalName"] == "cli.user@contoso.example"
    assert running.ctl("revoke-user", "cli.user@contoso.example")[1]["revoked"] == 0
    code, missing = running.ctl("revoke-user", "nobody@contoso.example")
    assert code == 1 and "no such user" in missing["error"]
    code, clients = running.ctl("clients")
    assert clients["clients"][0]["client_id"] == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def test_restart_keeps_state_and_reset_starts_afresh(tmp_path: Path) -> None:
    first = start(tmp_path)
    config = json.loads((tmp_path / "emulator.json").read_text())
    code, _ = first.ctl("user-create", json.dumps({"displayName": "Kept", "accountEnabled": True,
                                                     "userPrincipalName": "kept@contoso.example",
                                                     "mailNickname": "kept"}))
    assert code == 0
    stop(first)
    second = start(tmp_path)
    again = json.loads((tmp_path / "emulator.json").read_text())
    assert again["client_secret"] == config["client_secret"] and again["control_key"] == config["control_key"]
    ca = (tmp_path / "ca.pem").read_bytes()
    assert second.ctl("user-delete", "kept@contoso.example")[0] == 0
    stop(second)
    third = start(tmp_path, "--reset")
    fresh = json.loads((tmp_path / "emulator.json").read_text())
    assert fresh["control_key"] != config["control_key"] and (tmp_path / "ca.pem").read_bytes() == ca
    stop(third)


def test_ctl_without_a_running_emulator(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "emulator", "ctl", "--data", str(tmp_path), "status"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "emulator.json" in out.stderr


def test_ctl_request_mapping() -> None:
    def req(*argv: str):
        return ctl_request(ctl_parser().parse_args(["--data", "x", *argv]))

    assert req("fault", "drop", "--scope", "token", "--count", "1") == (
        "POST", "/faults", {"kind": "drop", "scope": "token", "every": 1, "path": "", "method": "", "count": 1})
    assert req("revoke-grant", "--user", "a@b") == ("POST", "/grants/revoke", {"user": "a@b"})
    assert req("member-add", "g1", "u1") == ("POST", "/groups/g1/members", {"id": "u1"})
    assert req("member-remove", "g1", "u1") == ("DELETE", "/groups/g1/members/u1", None)
    assert req("group-update", "g1", '{"description": "d"}') == ("PATCH", "/groups/g1", {"description": "d"})
    assert req("counters", "--reset") == ("DELETE", "/counters", None)
    assert req("raw", "get", "status") == ("GET", "/status", None)
    assert req("subscriptions") == ("GET", "/subscriptions", None)
    assert req("lifecycle", "s1", "reauthorizationRequired", "--pause") == (
        "POST", "/subscriptions/s1/lifecycle", {"event": "reauthorizationRequired", "pause": True})
    assert req("client", "--client-id", "c", "--redirect-uri", "https://a/cb") == (
        "POST", "/clients", {"client_id": "c", "redirect_uris": ["https://a/cb"]})
    started = time.perf_counter()
    assert req("clock") == ("GET", "/clock", None) and time.perf_counter() - started < 1
