"""Health checks, security headers, and error pages in HTML and JSON."""

from flask import Flask
from flask.testing import FlaskClient


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {"database": "ok"}


def test_readiness_reports_redis_when_configured(app: Flask, client: FlaskClient) -> None:
    app.config["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    assert client.get("/readyz").get_json()["checks"]["redis"] == "ok"
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    down = client.get("/readyz")
    assert down.status_code == 503 and down.get_json()["checks"]["redis"].startswith("error")


def test_security_headers_on_every_response(client: FlaskClient) -> None:
    for path in ("/login", "/healthz", "/does-not-exist"):
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_script(client: FlaskClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    assert "<script>" not in page and "<script src=" in page
    assert 'src="/bootstrap/static/js/bootstrap.min.js"' in page and "cdn" not in page.lower()


def test_error_pages_in_layout_and_json(client: FlaskClient) -> None:
    html = client.get("/nowhere")
    assert html.status_code == 404 and "Page not found" in html.get_data(as_text=True)
    assert "<nav" in html.get_data(as_text=True)
    api = client.get("/api/v1/nowhere")
    assert api.status_code == 404 and api.get_json() == {
        "error": {"code": "not_found",
                  "message": "There is nothing at this address. Check the link, or go back to the home page."}}
    wrong_method = client.delete("/login", headers={"Accept": "application/json"})
    assert wrong_method.status_code == 405 and wrong_method.get_json()["error"]["code"] == "method_not_allowed"


def test_unexpected_errors_give_a_500_page_with_a_reference(app: Flask) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaboom")

    client = app.test_client()
    html = client.get("/boom")
    assert html.status_code == 500 and "Reference:" in html.get_data(as_text=True)
    assert "kaboom" not in html.get_data(as_text=True)
    body = client.get("/boom", headers={"Accept": "application/json"}).get_json()
    assert body["error"]["code"] == "internal_error" and len(body["error"]["reference"]) == 12


def test_proxy_headers_are_trusted_only_when_configured(app: Flask, database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from flask import request

    from tests.conftest import TEST_FERNET_KEY, _build_app

    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "sso.example.com"}
    env = {"DATABASE_URL": database_url, "TRUSTED_PROXY_HOPS": "1", "SECRET_KEY": "x" * 32,
           "TOKEN_ENCRYPTION_KEYS": TEST_FERNET_KEY}
    trusting = _build_app(database_url, tmp_path, ENV=env)
    for application in (app, trusting):
        application.add_url_rule("/whereami", "whereami", lambda: request.url_root)
    assert app.test_client().get("/whereami", headers=headers).get_data(as_text=True) == "http://localhost/"
    assert trusting.test_client().get("/whereami", headers=headers).get_data(as_text=True) == "https://sso.example.com/"


def test_authenticated_answers_are_never_cached(client: FlaskClient, app: Flask) -> None:
    """A signed-in user's pages, API answers for a key, and anything under /admin, /api and /sessions say
    `Cache-Control: no-store`; public pages and static files stay cacheable."""
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_user, sign_in
    from tests.o365_ops_helpers import api_key_for, bearer

    admin = make_user(ADMIN_EMAIL, ADMIN_PASSWORD, "Administrator", name="Ada Admin")
    assert client.get("/login").headers.get("Cache-Control") != "no-store"
    for path in ("/admin/users", "/sessions", "/api/v1/datasources"):  # anonymous: refused, still private
        assert client.get(path).headers.get("Cache-Control") == "no-store", path
    key_client = app.test_client()
    answer = key_client.get("/api/v1/datasources", headers=bearer(api_key_for(admin)))
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD).headers["Cache-Control"] == "no-store"
    for path in ("/", "/sessions", "/admin/users", "/admin/users.csv", "/admin/audit", "/api/v1/datasources",
                 "/does-not-exist"):
        response = client.get(path)
        assert response.status_code in (200, 302, 404) and response.headers["Cache-Control"] == "no-store", path
    static = client.get("/static/css/app.css")
    assert static.status_code == 200 and static.headers.get("Cache-Control") != "no-store"
