"""Administration > Users: search, paging, create, edit, delete with confirmation, CSV, lock-out guards, audit."""

import csv
import html
import io

from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import AuditEvent, User
from tests.conftest import ADMIN_EMAIL, csrf_token, make_user


def _audit(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(db.select(AuditEvent).filter_by(action=action).order_by(AuditEvent.id)))


def test_list_search_and_server_side_paging(admin_client: FlaskClient, app: Flask) -> None:
    for i in range(30):
        make_user(f"person{i:02d}@example.com", None, "User", name=f"Person {i:02d}")
    first = admin_client.get("/admin/users").get_data(as_text=True)
    assert "person00@example.com" in first and "person30@example.com" not in first
    assert "<strong>31</strong> users · page 1 of" in first and 'aria-current="page"' in first
    assert first.count(">31<") == 1 and "in all" not in first  # the total once, above the table
    second = admin_client.get("/admin/users?page=2").get_data(as_text=True)
    assert "person29@example.com" in second and "person00@example.com" not in second
    found = admin_client.get("/admin/users?q=PERSON 1").get_data(as_text=True)
    assert "person10@example.com" in found and "person20@example.com" not in found
    assert "<strong>10</strong> users match" in found
    assert "No users match." in admin_client.get("/admin/users?q=nobody-like-this").get_data(as_text=True)


def test_list_filters_sort_page_size_and_total(admin_client: FlaskClient, app: Flask) -> None:
    for i in range(12):
        roles = ("User", "Manage datasources") if i % 3 == 0 else ("User",)
        make_user(f"worker{i:02d}@example.com", None, *roles, active=i % 4 != 0, name=f"Worker {i:02d}")
    page = admin_client.get("/admin/users?q=worker&active=no&sort=-name").get_data(as_text=True)
    assert "<strong>3</strong> users match" in page
    assert page.index("worker08@") < page.index("worker04@") < page.index("worker00@")
    page = admin_client.get("/admin/users?role=Manage+datasources&per_page=50").get_data(as_text=True)
    assert "<strong>4</strong> users match" in page and "worker09@" in page and "worker01@" not in page
    page = admin_client.get("/admin/users?q=worker&sort=name&per_page=25").get_data(as_text=True)
    assert page.index("worker00@") < page.index("worker11@") and "page 1 of 1" in page
    page = html.unescape(admin_client.get("/admin/users?role=Nobody&sort=sideways").get_data(as_text=True))
    assert 'there is no role "Nobody"' in page and '"sideways" is not a sort order' in page
    export = admin_client.get("/admin/users.csv?q=worker&active=no").get_data(as_text=True)
    assert len(list(csv.reader(io.StringIO(export)))) == 1 + 3


def test_create_user_with_roles_is_audited(admin_client: FlaskClient) -> None:
    token = csrf_token(admin_client, "/admin/users/new")
    response = admin_client.post("/admin/users/new", data={
        "csrf_token": token, "email": "New.Person@Example.com", "display_name": "New Person",
        "password": "a-long-password", "roles": ["User", "Manage datasources"], "active": "y"})
    assert response.status_code == 302
    user = db.session.scalars(db.select(User).filter_by(email="new.person@example.com")).one()
    assert user.role_names == {"User", "Manage datasources"} and user.active and user.check_password("a-long-password")
    (event,) = _audit("user.create")
    assert event.actor == ADMIN_EMAIL and event.target == "new.person@example.com"
    assert event.detail["roles"] == ["Manage datasources", "User"]
    assert "a-long-password" not in str(event.detail)


def test_create_rejects_bad_input_beside_the_field_and_saves_nothing(admin_client: FlaskClient) -> None:
    make_user("taken@example.com", None, "User")
    token = csrf_token(admin_client, "/admin/users/new")
    response = admin_client.post("/admin/users/new", data={
        "csrf_token": token, "email": "TAKEN@example.com", "password": "short", "roles": ["User"]})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "A user with this email already exists." in page and "Use at least 8 characters." in page
    assert 'value="TAKEN@example.com"' in page  # what was typed is kept
    assert db.session.scalar(db.select(db.func.count(User.id))) == 2
    bad = admin_client.post("/admin/users/new", data={"csrf_token": token, "email": "not-an-email"})
    assert "Invalid email address." in bad.get_data(as_text=True)


def test_edit_roles_and_active_flag(admin_client: FlaskClient) -> None:
    user = make_user("edit@example.com", None, "User")
    token = csrf_token(admin_client, f"/admin/users/{user.id}")
    response = admin_client.post(f"/admin/users/{user.id}", data={
        "csrf_token": token, "email": "edit@example.com", "display_name": "Edited", "roles": ["Administrator"]})
    assert response.status_code == 302
    db.session.expire_all()
    user = db.session.get(User, user.id)
    assert user.role_names == {"Administrator"} and user.active is False and user.display_name == "Edited"
    (event,) = _audit("user.update")
    assert event.detail["before"]["roles"] == ["User"] and event.detail["after"]["active"] is False


def test_admin_cannot_lock_themselves_out(admin_client: FlaskClient, admin_user: User) -> None:
    token = csrf_token(admin_client, f"/admin/users/{admin_user.id}")
    response = admin_client.post(f"/admin/users/{admin_user.id}", data={
        "csrf_token": token, "email": ADMIN_EMAIL, "roles": ["User"], "active": "y"})
    assert response.status_code == 409
    assert "cannot remove your own Administrator role" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, admin_user.id).has_any_role("Administrator")
    delete = admin_client.post(f"/admin/users/{admin_user.id}/delete", data={"csrf_token": token},
                               follow_redirects=True)
    assert "cannot remove your own Administrator role" in delete.get_data(as_text=True)
    assert db.session.get(User, admin_user.id) is not None


def test_delete_asks_for_confirmation_then_deletes(admin_client: FlaskClient) -> None:
    user = make_user("bye@example.com", None, "User")
    confirm = admin_client.get(f"/admin/users/{user.id}/delete")
    assert confirm.status_code == 200 and "Delete bye@example.com?" in confirm.get_data(as_text=True)
    assert db.session.get(User, user.id) is not None
    token = csrf_token(admin_client, f"/admin/users/{user.id}/delete")
    assert admin_client.post(f"/admin/users/{user.id}/delete", data={"csrf_token": token}).status_code == 302
    db.session.expire_all()
    assert db.session.scalars(db.select(User).filter_by(email="bye@example.com")).first() is None
    assert _audit("user.delete")[0].target == "bye@example.com"
    assert admin_client.get("/admin/users/999999/delete").status_code == 404


def test_csv_export_follows_the_search_and_neutralises_formulas(admin_client: FlaskClient) -> None:
    make_user("csv@example.com", None, "User", name="=HYPERLINK(1)")
    response = admin_client.get("/admin/users.csv?q=csv")
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["Name", "Email", "Roles", "Active", "Last sign-in", "Created"]
    assert rows[1][:4] == ["'=HYPERLINK(1)", "csv@example.com", "User", "yes"] and len(rows) == 2


def test_audit_log_names_the_office365_objects_it_knows_locally(admin_client: FlaskClient) -> None:
    import uuid

    from core.models import Group

    user_oid, group_oid, stranger = (str(uuid.uuid4()) for _ in range(3))
    make_user("adele.vance@contoso.example", None, "User").object_id = user_oid
    db.session.add(Group(name="Sales team", source_group_id=group_oid))
    db.session.add(AuditEvent(actor="ops@example.com", action="o365.add_user_to_group", outcome="success",
                              target=f"group {group_oid} / user {user_oid}"))
    db.session.add(AuditEvent(actor="ops@example.com", action="o365.remove_licence", outcome="success",
                              target=f"user {stranger} / sku {stranger}"))
    db.session.commit()
    page = admin_client.get("/admin/audit").get_data(as_text=True)
    assert f"group {group_oid} / user {user_oid}" in page  # the ids stay the record
    assert '<div class="small text-muted">Sales team, adele.vance@contoso.example</div>' in page
    assert page.count('<div class="small text-muted">') == 1  # nothing invented for unknown ids


def _signed_in_http_session(base_url: str):  # type: ignore[no-untyped-def]
    """A real HTTP client signed in as the Administrator through the sign-in form."""
    import re

    import requests

    from tests.conftest import ADMIN_PASSWORD

    http = requests.Session()
    page = http.get(f"{base_url}/login", timeout=30).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    signed_in = http.post(f"{base_url}/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                                     "csrf_token": token}, allow_redirects=False, timeout=30)
    assert signed_in.status_code == 302
    return http


def _bulk_users(count: int) -> None:
    from core.models import role_by_name

    role = role_by_name("User")
    for i in range(count):
        user = User(email=f"bulk{i:04d}@example.com", display_name=f"Bulk {i:04d}", active=True)
        user.roles = [role]
        db.session.add(user)
    db.session.commit()


def test_csv_exports_stream_every_row_through_a_real_server(admin_user, live_server) -> None:  # type: ignore[no-untyped-def]
    """Over real HTTP, as in production, the response body is read after the view's app context has ended:
    both exports must still deliver every row, more rows than one fetch batch."""
    _bulk_users(1203)
    for i in range(1203):
        db.session.add(AuditEvent(actor="system", action="probe.event", target=f"t{i}", outcome="success",
                                  detail={"i": i}))
    db.session.commit()
    http = _signed_in_http_session(live_server.url)
    users = http.get(f"{live_server.url}/admin/users.csv", timeout=60)
    assert users.status_code == 200 and users.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(users.text)))
    assert rows[0][0] == "Name" and len(rows) == 1 + 1204  # the header, the admin and the bulk users
    assert rows[-1][1] == "bulk1202@example.com" and rows[1][2] == "Administrator"
    audit = http.get(f"{live_server.url}/admin/audit.csv?action=probe.", timeout=60)
    events = list(csv.reader(io.StringIO(audit.text)))
    assert audit.status_code == 200 and len(events) == 1 + 1203 and events[1][5] == "t1202"


def test_csv_exports_stream_without_the_tests_app_context(admin_user, contextless_client) -> None:  # type: ignore[no-untyped-def]
    """The same guarantee through the test client, each request in an empty context as in production."""
    from tests.conftest import ADMIN_PASSWORD, sign_in

    _bulk_users(520)
    assert sign_in(contextless_client, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 302
    rows = list(csv.reader(io.StringIO(contextless_client.get("/admin/users.csv").get_data(as_text=True))))
    assert len(rows) == 1 + 521 and rows[-1][1] == "bulk0519@example.com"
    events = list(csv.reader(io.StringIO(contextless_client.get("/admin/audit.csv").get_data(as_text=True))))
    assert events[0][0] == "When" and "user.export" in {row[2] for row in events[1:]}
