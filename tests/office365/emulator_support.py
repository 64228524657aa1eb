"""Helpers to drive the tenant emulator from the office365 tests and benches: delegated tokens through its
Entra endpoints (sign-in, consent, code, refresh), and its control API (faults, counters)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from office365.errors import ReauthorizationRequired
from office365.graph import GraphClient, RetryPolicy, Timeouts

GRAPH = "https://graph.microsoft.com/"
ADMIN_SCOPES = (
    "User.Read.All", "Group.ReadWrite.All", "GroupMember.ReadWrite.All", "Organization.Read.All",
    "LicenseAssignment.ReadWrite.All",
)


def https_session(ca_path: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    session.verify = ca_path
    return session


class EmulatorTokens:
    """A TokenSource over the emulator's token endpoint (what the datasource does over MSAL in the product)."""

    def __init__(self, emu: Any, upn: str, scopes: tuple[str, ...] = ADMIN_SCOPES, password: str = "demo") -> None:
        self.emu = emu
        self.http = https_session(emu.ca_path)
        cfg = emu.config
        self.token_url = f"{emu.base_url}/{emu.tenant_id}/oauth2/v2.0/token"
        self.client = {"client_id": cfg["client_id"], "client_secret": cfg["client_secret"]}
        self.scope = " ".join(GRAPH + s for s in scopes) + " openid profile offline_access"
        params = {"client_id": cfg["client_id"], "response_type": "code", "redirect_uri": cfg["redirect_uris"][0],
                  "scope": self.scope, "state": "test"}
        form = {"ctx": urlencode(params), "kind": "authorize"}
        page = self.http.post(f"{emu.base_url}/{emu.tenant_id}/login", allow_redirects=False,
                              data={**form, "action": "signin", "username": upn, "password": password})
        if page.status_code == 200:  # consent page: accept for the organisation when allowed
            page = self.http.post(f"{emu.base_url}/{emu.tenant_id}/consent", allow_redirects=False,
                                  data={**form, "action": "accept", "org": "1"})
        assert page.status_code == 302, page.text[:500]
        query = parse_qs(urlsplit(page.headers["Location"]).query)
        assert "code" in query, query
        self._take(self.http.post(self.token_url, data={
            **self.client, "grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": params["redirect_uri"], "scope": self.scope}))
        self.refreshes = 0

    def _take(self, resp: requests.Response) -> None:
        body = resp.json()
        if resp.status_code != 200:
            raise ReauthorizationRequired(
                f"The token endpoint refused the refresh ({body.get('error')}: "
                f"{str(body.get('error_description', '')).splitlines()[0]}). Re-Authorize the datasource."
            )
        self.token = body["access_token"]
        self.refresh_token = body.get("refresh_token", getattr(self, "refresh_token", None))
        self.granted = frozenset(s for s in body["scope"].split() if s.startswith(GRAPH))

    @property
    def granted_scopes(self) -> frozenset[str]:
        return self.granted

    def access_token(self, *, force_refresh: bool = False) -> str:
        if force_refresh:
            self.refreshes += 1
            self._take(self.http.post(self.token_url, data={
                **self.client, "grant_type": "refresh_token", "refresh_token": self.refresh_token,
                "scope": self.scope}))
        return self.token


class Control:
    """The emulator's key-protected control API."""

    def __init__(self, emu: Any) -> None:
        self.base = emu.base_url + "/_emulator"
        self.http = https_session(emu.ca_path)
        self.http.headers["Authorization"] = f"Bearer {emu.config['control_key']}"

    def fault(self, **spec: Any) -> dict:
        resp = self.http.post(self.base + "/faults", json=spec)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def clear_faults(self) -> None:
        self.http.delete(self.base + "/faults").raise_for_status()

    def counters(self, reset: bool = False) -> dict:
        resp = self.http.get(self.base + "/counters", params={"reset": "1"} if reset else None)
        resp.raise_for_status()
        return resp.json()

    def graph_requests(self) -> int:
        return int(self.counters()["graph"])

    def reset_counters(self) -> None:
        self.http.delete(self.base + "/counters").raise_for_status()

    def post(self, path: str, body: dict) -> dict:
        resp = self.http.post(self.base + path, json=body)
        assert resp.status_code < 300, resp.text
        return resp.json()


def graph_client(emu: Any, tokens: Any, *, retry: RetryPolicy | None = None,
                 timeouts: Timeouts | None = None) -> GraphClient:
    return GraphClient(emu.config["graph_url"], tokens, ca_bundle=emu.ca_path,
                       retry=retry or RetryPolicy(max_attempts=6, backoff_base=0.05, backoff_cap=0.5,
                                                  retry_after_cap=2.0, deadline=20.0),
                       timeouts=timeouts or Timeouts(connect=3.0, read=10.0))


class EmulatorProcess:
    """The emulator in its own process (for benches: its memory and CPU are not counted as the client's).

    Same attributes as `emulator.server.start_in_thread`'s handle: base_url, ca_path, config, tenant_id, stop().
    """

    def __init__(self, data_dir: str, *extra_args: str, timeout: float = 300.0) -> None:
        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port", "0", "--data", data_dir, *extra_args],
            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        ready = threading.Event()

        def drain() -> None:  # read its output for its whole life, or it blocks on a full pipe
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("EMULATOR READY"):
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the emulator did not start")
        self.config = json.loads((Path(data_dir) / "emulator.json").read_text())
        self.base_url = self.config["base_url"]
        self.ca_path = self.config["ca_bundle"]
        self.tenant_id = self.config["tenants"][0]["id"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
