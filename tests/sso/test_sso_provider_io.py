"""Identity-provider I/O (issue 10 points 5 and 12): where a generic provider may be (no loopback, private or
metadata addresses unless SSO_ALLOW_PRIVATE_PROVIDERS, checked on the address actually connected to), no
redirects, endpoints on the issuer's origin, a 1 MB cap, a total deadline per fetch, and a hanging provider that
cannot hold the worker threads /healthz and /auth/verify need."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from flask import Flask, redirect
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer

from core.extensions import db
from sso.models import SignInAttempt, SsoProvider
from sso.provider_http import MAX_BODY_BYTES, address_allowed
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.sso_helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    FakeProvider,
    enable_sso,
    fake_sign_in,
)

DEVELOPMENT = {"SSO_ALLOW_PRIVATE_PROVIDERS": "1", "SSO_HTTP_TIMEOUT": "2"}


@pytest.fixture
def app_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The fakes listen on 127.0.0.1, so most tests run with the development setting; `[{}]` tests run without."""
    return getattr(request, "param", DEVELOPMENT)


PUBLIC_ONLY = pytest.mark.parametrize("app_env", [{"SSO_HTTP_TIMEOUT": "2"}], indirect=True, ids=["public-only"])


class SilentServer:
    """Accepts connections and then, per `mode`: never answers ("hang"), or drips a valid answer one byte at a time
    ("drip"). Records how many bytes each connection sent it."""

    def __init__(self, mode: str, drip_every: float = 0.2) -> None:
        self.mode, self.drip_every = mode, drip_every
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[int] = []
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        index = len(self.received)
        self.received.append(0)
        conn.settimeout(0.5)
        with conn:
            with contextlib.suppress(OSError):
                self.received[index] += len(conn.recv(65536))
            if self.mode == "drip":
                body = json.dumps({"issuer": f"http://127.0.0.1:{self.port}"}).encode()
                answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + \
                    str(len(body)).encode() + b"\r\n\r\n" + body
                for byte in answer:
                    if self.stopped.wait(self.drip_every):
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        return
            else:
                self.stopped.wait(60)

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()


def _add_provider(name: str, issuer: str) -> SsoProvider:
    from sso.providers import add_generic_provider

    provider = add_generic_provider(name, issuer, CLIENT_ID, CLIENT_SECRET)
    db.session.commit()
    return provider


def _failure_reason() -> str:
    return db.session.scalars(db.select(SignInAttempt).order_by(SignInAttempt.id.desc())).first().reason


# -- point 12: where a provider may be -------------------------------------------------------------------------

@PUBLIC_ONLY
@pytest.mark.parametrize("issuer", [
    "http://127.0.0.1:9000", "https://127.0.0.1", "https://localhost:8443", "https://10.1.2.3", "https://192.168.0.1",
    "https://169.254.169.254", "https://[::1]", "https://[fd00:ec2::254]", "https://[::ffff:127.0.0.1]",
    "https://0.0.0.0", "http://id.example.com",
])
def test_loopback_private_and_metadata_issuers_are_refused_without_the_development_setting(
        app: Flask, admin_client: FlaskClient, issuer: str) -> None:
    from tests.conftest import csrf_token

    form = {"kind": "oidc", "name": "internal", "issuer": issuer, "client_id": "gw", "client_secret": "s",
            "scopes": "openid", "user_claim": "email", "response_mode": "query",
            "csrf_token": csrf_token(admin_client, "/admin/sso")}
    response = admin_client.post("/admin/sso/providers", data=form)
    assert response.status_code == 400, issuer
    assert db.session.scalar(db.select(SsoProvider)) is None
    cli = app.test_cli_runner().invoke(args=["sso", "providers", "add", "--name", "internal", "--issuer", issuer,
                                             "--client-id", "gw"])
    assert cli.exit_code != 0 and ("SSO_ALLOW_PRIVATE_PROVIDERS" in cli.output or "https" in cli.output)


def test_link_local_stays_refused_even_in_development(app: Flask) -> None:
    from sso.providers import ProviderProblem, add_generic_provider

    with pytest.raises(ProviderProblem):
        add_generic_provider("metadata", "http://169.254.169.254/latest", "gw", "s")
    assert not address_allowed("169.254.169.254", allow_private=True)
    assert not address_allowed("fe80::1", allow_private=True)
    assert address_allowed("127.0.0.1", allow_private=True) and not address_allowed("127.0.0.1", allow_private=False)
    assert not address_allowed("::ffff:10.0.0.1", allow_private=False)
    assert address_allowed("93.184.215.14", allow_private=False)


@PUBLIC_ONLY
def test_a_name_that_resolves_to_loopback_is_refused_at_connect_time_before_a_byte_is_sent(
        client: FlaskClient) -> None:
    """The name passed the check when it was added (a name is resolved only when used); it now resolves to
    127.0.0.1 (DNS rebinding). The connection is checked by the address it reached, and nothing is sent."""
    listener = SilentServer("hang")
    try:
        enable_sso()
        db.session.add(SsoProvider(name="rebound", issuer=f"https://localhost:{listener.port}", client_id="gw"))
        db.session.commit()
        response = client.get("/sso/login/rebound")
        assert response.status_code == 502
        assert "not a public address" in response.get_data(as_text=True)
        time.sleep(0.6)
        assert sum(listener.received) == 0  # not even a TLS ClientHello
    finally:
        listener.stop()


def test_redirects_are_not_followed(client: FlaskClient, fake: FakeProvider) -> None:
    target = FakeProvider()  # another server the provider would send the gateway to
    try:
        @fake.app.get("/moved/.well-known/openid-configuration")
        def moved():  # type: ignore[no-untyped-def]
            return redirect(f"{target.issuer}/.well-known/openid-configuration")

        provider = db.session.scalars(db.select(SsoProvider)).one()
        provider.issuer = f"{fake.issuer}/moved"
        db.session.commit()
        response = client.get("/sso/login/fake")
        assert response.status_code == 502 and "redirect" in response.get_data(as_text=True)
        assert target.hits == {}
    finally:
        target.stop()


@pytest.mark.parametrize("endpoint", ["token_endpoint", "jwks_uri", "authorization_endpoint",
                                      "end_session_endpoint"])
def test_endpoints_on_another_origin_are_refused(client: FlaskClient, fake: FakeProvider, endpoint: str) -> None:
    elsewhere = fake.issuer.replace("127.0.0.1", "localhost") + "/steal"  # same machine, another origin
    fake.discovery_changes = {endpoint: elsewhere}
    response = client.get("/sso/login/fake")
    page = response.get_data(as_text=True)
    assert response.status_code == 502, page[:300]
    assert "is not on the issuer" in page and endpoint in page


def test_endpoints_on_an_allow_listed_host_need_https(app: Flask) -> None:
    from oidc.id_tokens import DiscoveryError
    from sso.oidc import endpoint_checker

    check = endpoint_checker("https://id.example.com/realm", ["oauth2.example.net"])
    check("token_endpoint", "https://id.example.com/realm/token")
    check("token_endpoint", "https://oauth2.example.net/token")
    for url in ("http://oauth2.example.net/token", "http://id.example.com/realm/token", "https://evil.example/t",
                "https://id.example.com:8443/token", "https://user:pw@id.example.com/token"):
        with pytest.raises(DiscoveryError):
            check("token_endpoint", url)


def test_a_document_over_one_megabyte_is_refused(client: FlaskClient, fake: FakeProvider) -> None:
    fake.discovery_changes = {"padding": "x" * (MAX_BODY_BYTES + 1)}
    response = client.get("/sso/login/fake")
    assert response.status_code == 502 and "more than" in response.get_data(as_text=True)


def test_a_compressed_document_is_capped_after_decompression(client: FlaskClient, fake: FakeProvider) -> None:
    import gzip

    @fake.app.after_request
    def compress(response):  # type: ignore[no-untyped-def]
        if response.mimetype == "application/json":
            response.set_data(gzip.compress(response.get_data()))
            response.headers["Content-Encoding"] = "gzip"
        return response

    fake.discovery_changes = {"padding": "x" * (8 * MAX_BODY_BYTES)}  # 8 MB in about 8 KB
    response = client.get("/sso/login/fake")
    assert response.status_code == 502, response.get_data(as_text=True)
    assert "more than" in _failure_reason(), _failure_reason()


def test_a_dripping_provider_is_cut_at_the_total_deadline(client: FlaskClient) -> None:
    drip = SilentServer("drip", drip_every=0.2)  # each byte well within the 2 s read timeout, ~25 s in all
    try:
        enable_sso()
        _add_provider("drip", f"http://127.0.0.1:{drip.port}")
        started = time.monotonic()
        response = client.get("/sso/login/drip")
        elapsed = time.monotonic() - started
        assert response.status_code == 502 and elapsed < 3.5, elapsed
        assert "could not be reached" in response.get_data(as_text=True)
    finally:
        drip.stop()


# -- point 5: a hanging provider and the worker threads ----------------------------------------------------------

class PooledServer:
    """The app served by a fixed pool of worker threads, like gunicorn's gthread worker (`--threads 4`)."""

    def __init__(self, app: Flask, threads: int = 4) -> None:
        self.pool = ThreadPoolExecutor(threads)
        self.server = BaseWSGIServer("127.0.0.1", 0, app)
        self.server.process_request = self._submit  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _submit(self, request: Any, client_address: Any) -> None:
        def work() -> None:
            try:
                self.server.finish_request(request, client_address)
            except Exception:  # noqa: BLE001
                self.server.handle_error(request, client_address)
            finally:
                self.server.shutdown_request(request)

        self.pool.submit(work)

    def stop(self) -> None:
        self.server.shutdown()
        self.pool.shutdown(wait=False, cancel_futures=True)


@pytest.fixture
def pooled(app: Flask) -> Iterator[PooledServer]:
    server = PooledServer(app)
    yield server
    server.stop()


def _signed_in(base: str) -> requests.Session:
    http = requests.Session()
    page = http.get(f"{base}/login", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert http.post(f"{base}/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token},
                     allow_redirects=False, timeout=10).status_code == 302
    return http


def test_a_hanging_provider_does_not_starve_healthz_or_auth_verify(app: Flask, pooled: PooledServer,
                                                                  admin_user) -> None:  # type: ignore[no-untyped-def]
    hang = SilentServer("hang")
    try:
        enable_sso()
        _add_provider("hang", f"http://127.0.0.1:{hang.port}")
        visitor = _signed_in(pooled.url)
        assert visitor.get(f"{pooled.url}/auth/verify", timeout=10).status_code == 200
        issuer = f"http://127.0.0.1:{hang.port}"
        attacks = ["/sso/login/hang", f"/sso/front-channel-logout?sid=x&iss={issuer}",
                   "/sso/front-channel-logout?sid=x&iss=https://other.example"] * 6

        def anonymous(path: str) -> int:
            with requests.Session() as http:
                return http.get(pooled.url + path, timeout=30).status_code

        latencies: dict[str, list[float]] = {"/healthz": [], "/auth/verify": []}
        with ThreadPoolExecutor(len(attacks)) as attackers:
            answers = [attackers.submit(anonymous, path) for path in attacks]
            time.sleep(0.3)  # the attack is under way
            for _ in range(5):
                for path in latencies:
                    started = time.monotonic()
                    status = (visitor if path == "/auth/verify" else requests).get(pooled.url + path, timeout=30)
                    latencies[path].append(time.monotonic() - started)
                    assert status.status_code == 200, path
                time.sleep(0.1)
            statuses = [answer.result() for answer in answers]
        print(f"latency while a provider hangs: {json.dumps({k: round(max(v), 3) for k, v in latencies.items()})}")
        assert max(latencies["/healthz"]) < 1.0 and max(latencies["/auth/verify"]) < 1.0, latencies
        assert set(statuses) <= {200, 502}
        assert len(hang.received) <= 2  # one discovery attempt, not one per anonymous request
    finally:
        hang.stop()


def test_a_failed_provider_fails_fast_until_its_back_off_ends(client: FlaskClient) -> None:
    hang = SilentServer("hang")
    try:
        enable_sso()
        _add_provider("hang", f"http://127.0.0.1:{hang.port}")
        started = time.monotonic()
        assert client.get("/sso/login/hang").status_code == 502
        assert 1.5 < time.monotonic() - started < 3.5  # the 2 s deadline
        started = time.monotonic()
        for _ in range(10):
            assert client.get("/sso/login/hang").status_code == 502
        assert time.monotonic() - started < 1.0
        assert "not retried" in _failure_reason()
        assert len(hang.received) == 1
    finally:
        hang.stop()


def test_the_token_endpoint_is_bounded_too(app: Flask, client: FlaskClient, fake: FakeProvider) -> None:
    from tests.sso_helpers import start_sign_in

    code, state = fake.authorize(start_sign_in(client, "fake"))
    fake.make_id_token = lambda nonce: "x" * (MAX_BODY_BYTES + 1)  # a token answer over 1 MB
    response = client.get(f"/sso/callback?code={code}&state={state}")
    assert response.status_code == 502 and "more than" in response.get_data(as_text=True)


@pytest.mark.parametrize("app_env", [{**DEVELOPMENT, "SSO_PROVIDER_ENDPOINT_HOSTS": "logout.example.net"}],
                         indirect=True, ids=["allow-listed-host"])
def test_an_endpoint_on_an_allow_listed_host_is_used_and_allowed_by_the_csp(client: FlaskClient,
                                                                           fake: FakeProvider) -> None:
    fake.discovery_changes = {"end_session_endpoint": "https://logout.example.net/end"}
    assert fake_sign_in(client, fake).status_code == 302
    page = client.get("/")
    assert "https://logout.example.net" in page.headers["Content-Security-Policy"]
    from tests.conftest import csrf_token

    signed_out = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert signed_out.status_code == 302 and signed_out.headers["Location"].startswith("https://logout.example.net/end?")
