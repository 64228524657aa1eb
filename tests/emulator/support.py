"""Helpers for the emulator's tests: the demo tenant's names, an HTTPS session that trusts the emulator's CA, JWT
peeking, the control API client, and a small "browser" that drives the sign-in and consent pages with requests."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from emulator.server import EmulatorHandle

REDIRECT = "http://localhost:8765/auth/callback"
REDIRECT_PORTLESS = "http://127.0.0.1/sso/callback"
REDIRECT_HTTPS = "https://gateway.example/auth/callback"
ADMIN = "admin@contoso.example"
PLAIN = "adele.vance@contoso.example"
OVERAGE = "isaiah.langer@contoso.example"
GRAPH = "https://graph.microsoft.com/"


def https_session(ca_path: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # the machine's REQUESTS_CA_BUNDLE would override verify
    session.verify = ca_path
    return session


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def jwt_claims(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def jwt_header(token: str) -> dict:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def redirect_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, (response.status_code, response.text[:400])
    return dict(parse_qsl(urlsplit(response.headers["Location"]).query))


class Control:
    """The control API of a running emulator."""

    def __init__(self, emu: EmulatorHandle) -> None:
        self.emu = emu
        self.http = https_session(emu.ca_path)
        self.http.headers["Authorization"] = f"Bearer {emu.config['control_key']}"

    def __call__(self, method: str, path: str, body: Any = None, expect: int | None = 200) -> Any:
        response = self.http.request(method, f"{self.emu.base_url}/_emulator{path}", json=body, timeout=10)
        if expect is not None:
            assert response.status_code == expect, (response.status_code, response.text)
        return response.json()


class Browser:
    """A user agent for the sign-in/consent pages (its own cookie jar = its own emu_session)."""

    def __init__(self, emu: EmulatorHandle) -> None:
        self.emu = emu
        self.http = https_session(emu.ca_path)
        self.tenant = emu.tenant_id
        self.client_id = emu.config["client_id"]
        self.client_secret = emu.config["client_secret"]

    def use_client(self, client: dict) -> Browser:
        self.client_id, self.client_secret = client["client_id"], client["client_secret"]
        return self

    def authorize(self, tenant: str | None = None, **params: str) -> requests.Response:
        query = {"client_id": self.client_id, "response_type": "code", "redirect_uri": REDIRECT,
                 "scope": "openid profile offline_access", "state": "st-1", "nonce": "n-1"}
        query.update(params)
        query = {k: v for k, v in query.items() if v is not None}
        return self.http.get(f"{self.emu.base_url}/{tenant or self.tenant}/oauth2/v2.0/authorize", params=query,
                             allow_redirects=False, timeout=10)

    @staticmethod
    def form_fields(page: requests.Response) -> dict[str, str]:
        assert page.status_code == 200, (page.status_code, page.text[:400])
        ctx = re.search(r'name="ctx" value="([^"]*)"', page.text)
        kind = re.search(r'name="kind" value="([^"]*)"', page.text)
        assert ctx and kind, page.text[:800]
        return {"ctx": html.unescape(ctx.group(1)), "kind": kind.group(1)}

    def signin(self, page: requests.Response, username: str = ADMIN, password: str = "demo",
               tenant: str | None = None, **extra: str) -> requests.Response:
        data = {**self.form_fields(page), "action": "password", "username": username, "password": password,
                **extra}
        return self.http.post(f"{self.emu.base_url}/{tenant or self.tenant}/login", data=data,
                              allow_redirects=False, timeout=10)

    def consent(self, page: requests.Response, accept: bool = True, org: bool = False,
                tenant: str | None = None) -> requests.Response:
        data = {**self.form_fields(page), "action": "accept" if accept else "cancel"}
        if org:
            data["org"] = "1"
        return self.http.post(f"{self.emu.base_url}/{tenant or self.tenant}/consent", data=data,
                              allow_redirects=False, timeout=10)

    def code(self, username: str = ADMIN, org: bool = False, **params: str) -> dict[str, str]:
        """Run authorize -> sign-in -> (consent) and return the redirect's query parameters."""
        response = self.authorize(**params)
        if response.status_code == 200 and 'name="password"' in response.text:
            response = self.signin(response, username)
        if response.status_code == 200 and "Permissions requested" in response.text:
            response = self.consent(response, org=org)
        return redirect_params(response)

    def token(self, **form: str) -> requests.Response:
        data = {"client_id": self.client_id, "client_secret": self.client_secret}
        data.update(form)
        return self.http.post(f"{self.emu.base_url}/{self.tenant}/oauth2/v2.0/token", data=data, timeout=10)

    def redeem(self, code: str, **form: str) -> requests.Response:
        return self.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT, **form)
