"""The README's nginx configuration, taken from the README itself, in front of a live gateway and a tiny upstream
app: signed out gives the sign-in redirect with the original URL, signed in reaches the app with the identity
headers, also for a user in 200 groups (Entra's maximum in a token), also with nginx's default 4 KB buffer. The
block's decision cache (issue 15, point 7): an allowed decision is reused within the gateway's X-Accel-Expires (the
gateway's /auth/verify hits are counted), a denial, a step-up or "not signed in" never is, another URL, method or
session is decided on its own, and a sign-out or a revocation stops a cached allow after at most the bound.
nginx (with auth_request) comes from tools/test-prereqs.sh; its absence is a failure, never a skip."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from tests.conftest import USER_EMAIL, USER_PASSWORD, LiveServer, csrf_token, make_user, sign_in

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
README = Path(__file__).resolve().parent.parent.parent / "README.md"


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


def readme_block() -> str:
    block = re.search(r"```nginx\n(.*?)```", README.read_text(), re.S)
    assert block, "the README shows an nginx configuration"
    return block.group(1)


@contextlib.contextmanager
def running_nginx(text: str, tmp_path: Path, live_server: LiveServer, upstream: int) -> Iterator[int]:
    port = _free_port()
    gateway_port = live_server.url.rsplit(":", 1)[1]
    server = text.replace("127.0.0.1:8000", f"127.0.0.1:{gateway_port}").replace(
        "127.0.0.1:9000", f"127.0.0.1:{upstream}").replace(
        "server_name app.example.com;", f"server_name app.example.com;\n    listen 127.0.0.1:{port};").replace(
        "/var/cache/nginx/", f"{tmp_path}/")
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
    try:
        yield port
    finally:
        process.terminate()
        process.wait(5)


@pytest.fixture(params=["as in the README", "nginx's default buffer"])
def nginx(request: pytest.FixtureRequest, tmp_path: Path, live_server: LiveServer, upstream: int) -> Iterator[int]:
    text = readme_block()
    if request.param == "nginx's default buffer":  # the answer must fit in 4 KB even without the README's 8k
        assert "proxy_buffer_size 8k;" in text
        text = re.sub(r"\n\s*proxy_buffer_size [^\n]*", "", text)
    with running_nginx(text, tmp_path, live_server, upstream) as port:
        yield port


def test_nginx_sends_strangers_to_sign_in_and_lets_signed_in_users_through(
        nginx: int, client: FlaskClient, plain_user) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{nginx}/reports?x=1"
    stranger = requests.get(url, headers={"Host": "app.example.com"}, allow_redirects=False, timeout=10)
    assert stranger.status_code == 302
    assert stranger.headers["Location"] == "https://sso.example.com/auth/start?rd=http://app.example.com/reports?x=1"

    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    cookie = client.get_cookie("gw_session").value
    for _ in range(2):  # the second one is answered by nginx's decision cache
        through = requests.get(url, headers={"Host": "app.example.com", "Cookie": f"gw_session={cookie}"},
                               allow_redirects=False, timeout=10)
        assert through.status_code == 200, through.text
        seen = {k.lower(): v for k, v in through.json().items()}
        assert seen["x-auth-request-email"] == USER_EMAIL and seen["x-auth-request-user"] == USER_EMAIL
        assert seen["x-auth-request-assertion"].count(".") == 2


def test_nginx_sends_a_refused_user_to_the_denied_page(nginx: int, client: FlaskClient) -> None:
    """`error_page 403 = @gateway_denied`: the access rules let example.com addresses in only."""
    from policies import service
    from tests.conftest import make_user

    service.save({"hosts": [{"host": "app.example.com", "default": "deny"}], "rules": [
        {"name": "Staff", "host": "app.example.com", "criteria": {"domains": ["example.com"]}}]},
        actor="admin@example.com")
    make_user("pat@elsewhere.org", USER_PASSWORD, "User")
    assert sign_in(client, "pat@elsewhere.org", USER_PASSWORD).status_code == 302
    refused = requests.get(f"http://127.0.0.1:{nginx}/reports?x=1", allow_redirects=False, timeout=10, headers={
        "Host": "app.example.com", "Cookie": f"gw_session={client.get_cookie('gw_session').value}"})
    assert refused.status_code == 302
    assert refused.headers["Location"] == "https://sso.example.com/auth/denied?rd=http://app.example.com/reports?x=1"


def test_the_legacy_allow_list_in_the_url_still_decides_for_its_location(
        tmp_path: Path, live_server: LiveServer, upstream: int, client: FlaskClient) -> None:
    """README's block with the older `?allowed_domains=example.com` (as deployments before the access rules have it):
    that list decides for the location, exactly as before."""
    from tests.conftest import make_user

    text = readme_block()
    assert "proxy_pass http://127.0.0.1:8000/auth/verify;" in text
    legacy = text.replace("/auth/verify;", "/auth/verify?allowed_domains=example.com;")
    make_user("pat@elsewhere.org", USER_PASSWORD, "User")
    make_user("kim@example.com", USER_PASSWORD, "User")
    with running_nginx(legacy, tmp_path, live_server, upstream) as port:
        for email, allowed in (("pat@elsewhere.org", False), ("kim@example.com", True)):
            browser = client.application.test_client()
            assert sign_in(browser, email, USER_PASSWORD).status_code == 302
            answer = requests.get(f"http://127.0.0.1:{port}/reports", allow_redirects=False, timeout=10, headers={
                "Host": "app.example.com", "Cookie": f"gw_session={browser.get_cookie('gw_session').value}"})
            assert answer.status_code == (200 if allowed else 302), email
            if not allowed:
                assert "/auth/denied?rd=" in answer.headers["Location"]


def test_nginx_lets_a_user_in_200_groups_through(nginx: int, client: FlaskClient, plain_user) -> None:  # type: ignore[no-untyped-def]
    """Issue 10 point 4: the answer carried every group twice (~17 KB) and nginx answered 500 from ~45 groups on."""
    from joserfc import jwt
    from joserfc.jwk import KeySet

    from tests.sso.test_forward_auth import ENTRA_GROUPS

    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    with client.session_transaction() as session:
        session["identity"] = {**session["identity"], "groups": ENTRA_GROUPS}
    cookie = client.get_cookie("gw_session").value
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").get_json())
    for _ in range(2):  # signed by the view, then answered by nginx's decision cache
        through = requests.get(f"http://127.0.0.1:{nginx}/reports", allow_redirects=False, timeout=10,
                               headers={"Host": "app.example.com", "Cookie": f"other=1; gw_session={cookie}"})
        assert through.status_code == 200, through.text
        seen = {k.lower(): v for k, v in through.json().items()}
        listed = seen["x-auth-request-groups"].split(",")
        assert listed == ENTRA_GROUPS[:20] and seen["x-auth-request-groups-overflow"] == "true"
        claims = jwt.decode(seen["x-auth-request-assertion"], keys, algorithms=["ES256"]).claims
        assert claims["aud"] == "app.example.com" and claims["groups"] == listed and claims["groups_overflow"]


def test_nginx_hands_the_access_rules_the_method_and_url(tmp_path: Path, live_server: LiveServer, upstream: int,
                                                         client: FlaskClient, plain_user) -> None:  # type: ignore[no-untyped-def]
    """The README's block: the access rules decide, from X-Original-Method/-URL."""
    from policies import service

    text = readme_block()
    assert "/auth/verify;" in text and "X-Original-Method $request_method" in text
    service.save({"rules": [
        {"name": "Health", "host": "app.example.com", "paths": ["/healthz"], "action": "public"},
        {"name": "Read only", "host": "app.example.com", "methods": ["POST", "PUT", "PATCH", "DELETE"],
         "action": "deny"}]}, actor="admin@example.com")
    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    cookie = {"Host": "app.example.com", "Cookie": f"gw_session={client.get_cookie('gw_session').value}"}
    with running_nginx(text, tmp_path, live_server, upstream) as port:
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/reports", headers=cookie, allow_redirects=False, timeout=10).status_code == 200
        refused = requests.delete(f"{base}/reports", headers=cookie, allow_redirects=False, timeout=10)
        assert refused.status_code == 302 and "/auth/denied?rd=" in refused.headers["Location"]
        public = requests.get(f"{base}/healthz", headers={"Host": "app.example.com"}, allow_redirects=False,
                              timeout=10)
        assert public.status_code == 200  # the upstream, without sign-in


def test_nginx_passes_the_claims_a_host_chose_upstream(app: Flask, tmp_path: Path, live_server: LiveServer,
                                                      upstream: int, client: FlaskClient, plain_user) -> None:  # type: ignore[no-untyped-def]
    """Issue 14 point 7: the README's block plus its two lines for a chosen claim header: the host's app
    receives the session's roles in X-Auth-Request-Roles, beside the fixed set."""
    from policies import service

    snippet = re.search(r"\n    (auth_request_set \$roles [^\n]+)\n"
                        r"    (proxy_set_header X-Auth-Request-Roles [^\n]+)\n", README.read_text())
    assert snippet, "the README shows how nginx passes a chosen claim header on"
    text = readme_block()
    anchor = re.search(r"\n(\s*)auth_request_set \$assertion [^\n]+\n", text)
    assert anchor
    text = text.replace(anchor.group(0), f"{anchor.group(0)}{anchor.group(1)}{snippet.group(1)}\n"
                                         f"{anchor.group(1)}{snippet.group(2)}\n")
    service.save({"hosts": [{"host": "app.example.com", "headers": {"X-Auth-Request-Roles": "roles"}}],
                  "rules": []}, actor="admin@example.com")
    assert sign_in(client, USER_EMAIL, USER_PASSWORD).status_code == 302
    with client.session_transaction() as session:
        session["identity"] = {**session["identity"], "roles": ["Reports.Read", "Reports.Approve"]}
    cookie = {"Host": "app.example.com", "Cookie": f"gw_session={client.get_cookie('gw_session').value}"}
    app.config["FORWARD_AUTH_CACHE_SECONDS"] = 0  # nginx's decision cache off: the second answer is the fast path's
    with running_nginx(text, tmp_path, live_server, upstream) as port:
        for _ in range(2):  # the view, then the fast path
            through = requests.get(f"http://127.0.0.1:{port}/reports", headers=cookie, allow_redirects=False,
                                   timeout=10)
            assert through.status_code == 200, through.text
            seen = {k.lower(): v for k, v in through.json().items()}
            assert seen["x-auth-request-roles"] == "Reports.Read,Reports.Approve"
            assert seen["x-auth-request-email"] == USER_EMAIL


FINANCE = {"id": "0b4f5a3e-0000-4000-8000-00000000f1a0", "name": "Finance Approvers"}
CACHE_POLICY: dict[str, Any] = {"rules": [
    {"name": "Read only", "host": "app.example.com", "methods": ["POST", "PUT", "PATCH", "DELETE"], "action": "deny"},
    {"name": "Fresh sign-in", "host": "app.example.com", "paths": ["/payroll/"],
     "criteria": {"max_auth_age_minutes": 15}},
    {"name": "Finance", "host": "app.example.com", "paths": ["/finance/"], "criteria": {"groups_any": [FINANCE]}},
    {"name": "Paul only", "host": "app.example.com", "paths": ["/private/"], "criteria": {"emails": [USER_EMAIL]}},
    {"name": "Desk", "host": "app.example.com", "paths": ["/desk/"], "networks": ["127.0.0.0/8"]},
]}


@pytest.fixture
def verify_hits(app: Flask) -> Iterator[list[str]]:
    """Each /auth/verify the gateway answered, as "METHOD URL" of the visitor's request."""
    seen: list[str] = []
    inner = app.wsgi_app

    def counting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/auth/verify":
            seen.append(f"{environ.get('HTTP_X_ORIGINAL_METHOD')} {environ.get('HTTP_X_ORIGINAL_URL')}")
        return inner(environ, start_response)

    app.wsgi_app = counting  # type: ignore[method-assign]
    yield seen
    app.wsgi_app = inner  # type: ignore[method-assign]


@pytest.fixture
def rules_nginx(tmp_path: Path, live_server: LiveServer, upstream: int) -> Iterator[str]:
    """README's block deciding by the access rules (plain /auth/verify), with CACHE_POLICY saved; its base URL."""
    from policies import service

    service.save(CACHE_POLICY, actor="admin@example.com")
    text = readme_block()
    assert "proxy_cache gateway_decisions;" in text and "X-Accel-Expires" in text
    with running_nginx(text, tmp_path, live_server, upstream) as port:
        yield f"http://127.0.0.1:{port}"


def through(base: str, path: str, cookie: str | None = None, method: str = "GET") -> requests.Response:
    headers = {"Host": "app.example.com", **({"Cookie": f"gw_session={cookie}"} if cookie else {})}
    return requests.request(method, base + path, headers=headers, allow_redirects=False, timeout=10)


def cookie_of(client: FlaskClient, email: str = USER_EMAIL) -> str:
    assert sign_in(client, email, USER_PASSWORD).status_code == 302
    return client.get_cookie("gw_session").value


def set_identity(client: FlaskClient, **changes: Any) -> None:
    with client.session_transaction() as session:
        session["identity"] = {**session["identity"], **changes}


def test_nginx_reuses_an_allowed_decision_within_the_bound(app: Flask, rules_nginx: str, client: FlaskClient,
                                                           plain_user, verify_hits: list[str]) -> None:  # type: ignore[no-untyped-def]
    app.config["FORWARD_AUTH_CACHE_SECONDS"] = 30
    cookie = cookie_of(client)
    for _ in range(5):
        answer = through(rules_nginx, "/reports", cookie)
        assert answer.status_code == 200 and answer.json()["X-Auth-Request-Email"] == USER_EMAIL
        assert answer.json()["X-Auth-Request-Assertion"].count(".") == 2  # the cached answer's headers reach the app
    assert verify_hits == ["GET http://app.example.com/reports"]


def test_nginx_never_reuses_a_denial_a_step_up_or_not_signed_in(app: Flask, rules_nginx: str, client: FlaskClient,
                                                                plain_user, verify_hits: list[str]) -> None:  # type: ignore[no-untyped-def]
    app.config["FORWARD_AUTH_CACHE_SECONDS"] = 30
    for _ in range(3):
        assert "/auth/start?rd=" in through(rules_nginx, "/reports").headers["Location"]
    cookie = cookie_of(client)
    set_identity(client, auth_time=int(time.time()) - 1200)  # 20 minutes ago: /payroll/ needs a fresher sign-in
    for _ in range(3):
        assert "/auth/denied?rd=" in through(rules_nginx, "/reports", cookie, "DELETE").headers["Location"]
        assert "/auth/denied?rd=" in through(rules_nginx, "/finance/q3", cookie).headers["Location"]
        assert "/auth/start?rd=" in through(rules_nginx, "/payroll/may", cookie).headers["Location"]  # step-up
        assert through(rules_nginx, "/desk/1", cookie).status_code == 200  # networks: the address decides
    assert len(verify_hits) == 3 + 3 * 4
    set_identity(client, auth_time=int(time.time()))  # the step-up happened: nothing cached stands in the way
    assert through(rules_nginx, "/payroll/may", cookie).status_code == 200
    assert len(verify_hits) == 3 + 3 * 4 + 1


def test_nginx_decides_each_url_method_and_session_on_its_own(app: Flask, rules_nginx: str, client: FlaskClient,
                                                              plain_user, verify_hits: list[str]) -> None:  # type: ignore[no-untyped-def]
    app.config["FORWARD_AUTH_CACHE_SECONDS"] = 30
    paul = cookie_of(client)
    make_user("bob@example.com", USER_PASSWORD, "User")
    bob = cookie_of(app.test_client(), "bob@example.com")
    assert through(rules_nginx, "/private/a", paul).status_code == 200
    assert through(rules_nginx, "/private/a", paul).status_code == 200  # reused
    assert "/auth/denied?rd=" in through(rules_nginx, "/private/a", bob).headers["Location"]  # another session
    assert "/auth/denied?rd=" in through(rules_nginx, "/private/a", paul, "POST").headers["Location"]  # method
    assert through(rules_nginx, "/private/a?page=2", paul).status_code == 200  # another URI
    assert through(rules_nginx, "/private/a", f"{paul}; theme=dark").status_code == 200  # another Cookie header
    assert verify_hits == ["GET http://app.example.com/private/a", "GET http://app.example.com/private/a",
                           "POST http://app.example.com/private/a", "GET http://app.example.com/private/a?page=2",
                           "GET http://app.example.com/private/a"]


@pytest.mark.parametrize("ending", ["sign-out", "revocation"])
def test_a_cached_allow_stops_within_the_bound_after_sign_out_or_revocation(
        app: Flask, rules_nginx: str, client: FlaskClient, plain_user, verify_hits: list[str],  # type: ignore[no-untyped-def]
        ending: str) -> None:
    from sso.sessions import store

    app.config["FORWARD_AUTH_CACHE_SECONDS"] = 3
    cookie = cookie_of(client)
    assert through(rules_nginx, "/reports", cookie).status_code == 200
    if ending == "sign-out":
        assert client.post("/logout", data={"csrf_token": csrf_token(client, "/")}).status_code == 302
    else:
        assert store().end_for_user(plain_user.id) == 1
    assert through(rules_nginx, "/reports", cookie).status_code == 200  # still the cached allow (3 s at most) ...
    assert len(verify_hits) == 1
    time.sleep(3 + 1 + 0.2)  # ... the bound, and the second nginx may round it up to
    assert "/auth/start?rd=" in through(rules_nginx, "/reports", cookie).headers["Location"]
    assert len(verify_hits) == 2


def test_an_nginx_cache_in_front_of_the_gateway_for_traefik(app: Flask, tmp_path: Path, live_server: LiveServer,
                                                            upstream: int, client: FlaskClient, plain_user,  # type: ignore[no-untyped-def]
                                                            verify_hits: list[str]) -> None:
    """README's location for Traefik (whose ForwardAuth has no cache), asked as Traefik asks: X-Forwarded-Method,
    -Proto, -Host and -Uri, the Cookie, and the forwardAuth address's own query."""
    from policies import service

    readme = README.read_text()
    location = re.search(r"```nginx\n(location = /auth/verify \{.*?\n\})\n```", readme, re.S)
    assert location, "README's nginx location for Traefik"
    zone = re.search(r"\n(proxy_cache_path [^\n]+)\n", readme)
    assert zone and "$request_uri $http_x_forwarded_method" in location.group(1)
    text = f"{zone.group(1)}\nserver {{\n    server_name app.example.com;\n{location.group(1)}\n}}\n"
    service.save(CACHE_POLICY, actor="admin@example.com")
    app.config["FORWARD_AUTH_CACHE_SECONDS"] = 30
    paul = cookie_of(client)

    def ask(base: str, method: str, uri: str, cookie: str, query: str = "?redirect=1") -> requests.Response:
        return requests.get(f"{base}/auth/verify{query}", allow_redirects=False, timeout=10, headers={
            "X-Forwarded-Method": method, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com",
            "X-Forwarded-Uri": uri, "Cookie": f"gw_session={cookie}"})

    with running_nginx(text, tmp_path, live_server, upstream) as port:
        base = f"http://127.0.0.1:{port}"
        for _ in range(3):
            allowed = ask(base, "GET", "/private/a", paul)
            assert allowed.status_code == 200 and allowed.headers["X-Auth-Request-Email"] == USER_EMAIL
        assert len(verify_hits) == 1
        for _ in range(2):
            denied = ask(base, "DELETE", "/private/a", paul)
            assert denied.status_code == 302 and "/auth/denied?rd=" in denied.headers["Location"]
        assert ask(base, "GET", "/private/b", paul).status_code == 200
        assert ask(base, "GET", "/private/a", paul, "?redirect=1&allowed_emails=x@example.org").status_code == 403
        assert len(verify_hits) == 1 + 2 + 1 + 1
