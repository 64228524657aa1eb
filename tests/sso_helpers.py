"""Helpers for single sign-on tests: a tiny OpenID provider whose ID tokens the test signs itself, the redirect
URIs the tenant emulator registers for sign-in, panva's oidc-provider as a process, and the steps of a sign-in
through the Flask test client. The fixtures built on them live in tests/sso/conftest.py."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask, jsonify, request
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

from core.extensions import db
from core.models import Datasource
from emulator.server import EmulatorHandle
from sso.models import SsoProvider
from sso.settings import forget_settings, settings_row
from tests.o365_helpers import form_on_page

KEY_A = RSAKey.generate_key(2048, parameters={"kid": "key-a"}, private=True)
KEY_B = RSAKey.generate_key(2048, parameters={"kid": "key-b"}, private=True)
CLIENT_ID = "gateway-test-client"
CLIENT_SECRET = "fake-provider-secret"


class FakeProvider:
    """Discovery, JWKS and a token endpoint (PKCE-checked, codes single use) on 127.0.0.1 over plain http.

    `make_id_token(nonce) -> str` decides what the token endpoint returns; tests replace it to tamper.
    `discovery_changes` is merged into the discovery document (a None value removes the key).
    """

    def __init__(self) -> None:
        self.app = Flask("fake_provider")
        self.hits: dict[str, int] = {}
        self.codes: dict[str, str] = {}  # code -> code_challenge
        self.nonces: dict[str, str] = {}
        self.published = [KEY_A]
        self.discovery_changes: dict[str, Any] = {}
        self.make_id_token: Callable[[str], str] = self.good_token
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self._routes()
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)  # stop() in 50 ms
        self.thread.start()

    def _count(self, name: str) -> None:
        self.hits[name] = self.hits.get(name, 0) + 1

    def _routes(self) -> None:
        app = self.app
        self.delay = 0.0

        @app.before_request
        def slow():  # type: ignore[no-untyped-def]
            time.sleep(self.delay)

        @app.get("/.well-known/openid-configuration")
        def discovery():  # type: ignore[no-untyped-def]
            self._count("discovery")
            document = dict(issuer=self.issuer, authorization_endpoint=f"{self.issuer}/authorize",
                            token_endpoint=f"{self.issuer}/token", jwks_uri=f"{self.issuer}/jwks",
                            end_session_endpoint=f"{self.issuer}/logout",
                            id_token_signing_alg_values_supported=["RS256"],
                            token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"])
            document.update(self.discovery_changes)
            return jsonify({key: value for key, value in document.items() if value is not None})

        @app.get("/jwks")
        def jwks():  # type: ignore[no-untyped-def]
            self._count("jwks")
            return jsonify(keys=[key.as_dict(private=False) for key in self.published])

        @app.post("/token")
        def token():  # type: ignore[no-untyped-def]
            self._count("token")
            code = request.form.get("code", "")
            challenge = self.codes.pop(code, None)
            verifier = request.form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge is None or digest != challenge:
                return jsonify(error="invalid_grant", error_description="code unknown, used or PKCE mismatch"), 400
            return jsonify(access_token="opaque", token_type="Bearer", expires_in=3600,
                           id_token=self.make_id_token(self.nonces.get(code, "")))

    def claims(self, nonce: str, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": "subject-1", "iat": now, "nbf": now,
                  "exp": now + 3600, "nonce": nonce, "email": "pat@example.org", "name": "Pat Example",
                  "email_verified": True, "preferred_username": "pat@example.org", "sid": "idp-session-1"}
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], key: RSAKey = KEY_A, alg: str = "RS256") -> str:
        return jwt.encode({"alg": alg, "kid": key.kid}, claims, key)

    def good_token(self, nonce: str) -> str:
        return self.sign(self.claims(nonce))

    def authorize(self, auth_url: str) -> tuple[str, str]:
        """What the provider's sign-in page would do: remember the PKCE challenge, hand back (code, state)."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(auth_url).query).items()}
        assert query["code_challenge_method"] == "S256" and query["response_type"] == "code"
        code = base64.urlsafe_b64encode(hashlib.sha256(query["state"].encode()).digest()).decode()[:32]
        self.codes[code] = query["code_challenge"]
        self.nonces[code] = query["nonce"]
        return code, query["state"]

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


def enable_sso(**settings: Any) -> None:
    row = settings_row()
    row.enabled = True
    for name, value in settings.items():
        setattr(row, name, value)
    db.session.commit()
    forget_settings()


def add_fake_provider(fake: FakeProvider, name: str = "fake", **fields: Any) -> SsoProvider:
    from sso.providers import add_generic_provider

    provider = add_generic_provider(name, fake.issuer, CLIENT_ID, CLIENT_SECRET, **fields)
    db.session.commit()
    return provider


def start_sign_in(client: FlaskClient, name: str, query: str = "") -> str:
    response = client.get(f"/sso/login/{name}{query}")
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response.headers["Location"]


def fake_sign_in(client: FlaskClient, fake: FakeProvider, name: str = "fake", next_path: str = ""):  # type: ignore[no-untyped-def]
    code, state = fake.authorize(start_sign_in(client, name, f"?next={next_path}" if next_path else ""))
    return client.get(f"/sso/callback?code={code}&state={state}")


def verify_status(client: FlaskClient, url: str) -> int:
    """/auth/verify's answer for GET `url` with this browser's session (nginx's headers)."""
    return client.get("/auth/verify", headers={"X-Original-URL": url, "X-Original-Method": "GET"}).status_code


def stored_identity(client: FlaskClient) -> dict[str, Any]:
    """The identity the server keeps in this browser's session (what the access rules read)."""
    from sso.sessions import hash_token, store

    cookie = client.get_cookie("gw_session")
    assert cookie is not None, "signed in"
    record = store().get(hash_token(cookie.value))
    assert record is not None
    return record.data["identity"]


# -- the tenant emulator ------------------------------------------------------------------------------------

SSO_PATHS = ("/sso/callback", "/sso/signed-out", "/admin/datasources/authorize/callback")


def ready_datasource(emulator: EmulatorHandle, name: str = "Contoso 365") -> Datasource:
    """A datasource as authorization leaves it (without a grant: enough for sign-in, not for Graph)."""
    datasource = Datasource(name=name, sso_enabled=True, status=Datasource.READY, tenant_id=emulator.tenant_id,
                            tenant_name="Contoso", granted_scopes="User.Read.All")
    db.session.add(datasource)
    db.session.commit()
    return datasource


def add_office365_provider(datasource: Datasource, name: str = "contoso", **fields: Any) -> SsoProvider:
    from sso.providers import add_office365_provider as add

    provider = add(name, datasource, **fields)
    db.session.commit()
    return provider


def microsoft_sign_in(client: FlaskClient, emulator: EmulatorHandle, name: str, username: str,
                      query: str = ""):  # type: ignore[no-untyped-def]
    """Start at /sso/login/<name>, sign in at the emulator, deliver the callback (query or form_post)."""
    from tests.o365_helpers import sign_in_at_microsoft

    auth_url = start_sign_in(client, name, query)
    response = sign_in_at_microsoft(emulator, auth_url, username, org_consent=False)
    if response.status_code == 302:
        location = urlsplit(response.headers["Location"])
        assert location.path == "/sso/callback", response.headers["Location"]
        return client.get(f"{location.path}?{location.query}")
    action, fields = form_on_page(response.text, "/sso/callback")  # form_post: the auto-submitted form
    return client.post(urlsplit(action).path, data=fields)


# -- panva's oidc-provider (node) ---------------------------------------------------------------------------

OIDC_DIR = Path(__file__).resolve().parent / "oidc_provider"
OIDC_CLIENT_ID = "gateway"
OIDC_CLIENT_SECRET = "a-long-test-client-secret-for-oidc-provider"


class OidcProviderProcess:
    def __init__(self, gateway_url: str, provider_name: str, timeout: float = 30.0) -> None:
        import os
        import shutil
        import subprocess

        node = shutil.which("node")
        if node is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("oidc-provider is not installed: run tools/test-prereqs.sh")
        env = {**os.environ, "CLIENT_ID": OIDC_CLIENT_ID, "CLIENT_SECRET": OIDC_CLIENT_SECRET,
               "REDIRECT_URIS": f"{gateway_url}/sso/callback",
               "POST_LOGOUT_REDIRECT_URIS": f"{gateway_url}/sso/signed-out",
               "BACKCHANNEL_LOGOUT_URI": f"{gateway_url}/sso/back-channel-logout/{provider_name}"}
        self.process = subprocess.Popen([node, "provider.mjs"], cwd=OIDC_DIR, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        ready = threading.Event()
        self.issuer = ""

        def drain() -> None:  # for the process's whole life, or it blocks on a full pipe
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                if line.startswith("OIDC READY "):
                    self.issuer = line.split()[2]
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"oidc-provider did not start within {timeout} s: {''.join(self.output)[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except Exception:  # noqa: BLE001
                self.process.kill()
