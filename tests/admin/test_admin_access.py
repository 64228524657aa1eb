"""Administration is reachable only with Administrator or Manage datasources; each page narrows further."""

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import USER_EMAIL, USER_PASSWORD, make_user, sign_in

ADMIN_ONLY = ["/admin/users", "/admin/users/new", "/admin/audit", "/admin/scheduled-tasks", "/admin/sso",
              "/admin/users.csv", "/admin/audit.csv"]


def test_signed_out_visitors_are_sent_to_sign_in(client: FlaskClient, app: Flask) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_plain_users_get_403_and_no_admin_menu(client: FlaskClient, plain_user) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    assert "Administration" not in client.get("/").get_data(as_text=True)
    for path in ["/admin/", "/admin/datasources", *ADMIN_ONLY]:
        response = client.get(path)
        assert response.status_code == 403, path
        assert "You do not have permission" in response.get_data(as_text=True)


def test_manage_datasources_reaches_data_sources_only(client: FlaskClient, app: Flask) -> None:
    make_user("ds@example.com", "datasource-pass", "Manage datasources")
    sign_in(client, "ds@example.com", "datasource-pass")
    nav = client.get("/admin/").get_data(as_text=True)
    assert "Data sources" in nav and "Audit log" not in nav
    assert client.get("/admin/datasources").status_code == 200
    for path in ADMIN_ONLY:
        assert client.get(path).status_code == 403, path


@pytest.mark.parametrize("path", ["/admin/", "/admin/datasources", *ADMIN_ONLY])
def test_administrators_reach_every_page(admin_client: FlaskClient, path: str) -> None:
    assert admin_client.get(path).status_code == 200


def test_403_as_json_for_api_callers(client: FlaskClient, plain_user) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    response = client.get("/admin/users", headers={"Accept": "application/json"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
