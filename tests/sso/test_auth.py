"""Local sign-in: the break-glass path. Passwords hashed, sessions renewed, failures throttled and audited."""

from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import AuditEvent, User
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, USER_EMAIL, USER_PASSWORD, csrf_token, make_user, sign_in


def test_password_is_hashed_never_stored(app: Flask, admin_user: User) -> None:
    raw = db.session.execute(db.text("SELECT password_hash FROM users")).scalar_one()
    assert ADMIN_PASSWORD not in raw and raw.startswith(("scrypt:", "pbkdf2:"))


def test_sign_in_sets_hardened_cookie_and_lands_on_home(client: FlaskClient, admin_user: User) -> None:
    response = sign_in(client, ADMIN_EMAIL.upper(), ADMIN_PASSWORD)  # email match ignores case
    assert response.status_code == 302 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("gw_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    home = client.get("/")
    assert home.status_code == 200 and "Welcome, Ada Admin" in home.get_data(as_text=True)
    assert db.session.get(User, admin_user.id).last_sign_in_at is not None


def test_session_is_renewed_at_sign_in(client: FlaskClient, admin_user: User) -> None:
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    with client.session_transaction() as session:
        assert "planted" not in session and session.get("_user_id") == str(admin_user.id)


def test_wrong_password_is_refused_and_audited(client: FlaskClient, admin_user: User) -> None:
    response = sign_in(client, ADMIN_EMAIL, "wrong")
    assert response.status_code == 200 and "Invalid email or password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="sign_in.local")).one()
    assert (event.outcome, event.actor, event.detail["reason"]) == ("failure", ADMIN_EMAIL, "bad credentials")


def test_disabled_account_cannot_sign_in(client: FlaskClient, app: Flask) -> None:
    make_user("gone@example.com", "disabled-password", "User", active=False)
    response = sign_in(client, "gone@example.com", "disabled-password")
    assert "This account is disabled" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_disabling_a_user_ends_their_session(client: FlaskClient, plain_user: User) -> None:
    sign_in(client, USER_EMAIL, USER_PASSWORD)
    assert client.get("/").status_code == 200
    plain_user.active = False
    db.session.commit()
    assert client.get("/").status_code == 302


def test_repeated_failures_are_throttled_with_a_clear_page(client: FlaskClient, admin_user: User) -> None:
    """Per client IP, whatever the accounts tried (the per-account limit: tests/sso/test_sign_in_throttle.py)."""
    statuses = [sign_in(client, f"guess{i}@example.com", f"wrong-{i}").status_code for i in range(11)]
    assert statuses[:10] == [200] * 10 and statuses[10] == 429
    page = client.post("/login", data={"email": ADMIN_EMAIL, "password": "x",
                                       "csrf_token": csrf_token(client, "/login")})
    assert page.status_code == 429
    assert "Too many attempts. Wait a minute before trying again." in page.get_data(as_text=True)
    assert "Retry-After" in page.headers


def test_successful_sign_ins_do_not_count_towards_the_throttle(client: FlaskClient, admin_user: User) -> None:
    for _ in range(12):
        assert sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 302
        client.post("/logout", data={"csrf_token": csrf_token(client, "/")})


def test_next_is_kept_only_as_a_same_site_path(client: FlaskClient, admin_user: User) -> None:
    for evil in ("//evil.example", "/\\evil.example", "https://evil.example", "javascript:alert(1)"):
        token = csrf_token(client, "/login")
        response = client.post(f"/login?next={evil}", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                                            "csrf_token": token})
        assert response.headers["Location"] == "/", evil
        client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    token = csrf_token(client, "/login")
    response = client.post("/login?next=/admin/users", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                                             "csrf_token": token})
    assert response.headers["Location"] == "/admin/users"


def test_sign_out_needs_post_with_csrf(client: FlaskClient, admin_user: User) -> None:
    sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no CSRF token
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 302 and client.get("/").status_code == 302


def test_login_form_rejects_missing_csrf(client: FlaskClient, admin_user: User) -> None:
    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.status_code == 400 and client.get("/").status_code == 302
    assert "The form expired or was sent from elsewhere" in response.get_data(as_text=True)


def test_create_admin_command(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create-admin", "Boss@Example.com", "--password-stdin"],
                           input="long-enough-pass\n")
    assert result.exit_code == 0, result.output
    user = db.session.scalars(db.select(User).filter_by(email="boss@example.com")).one()
    assert user.has_any_role("Administrator") and user.check_password("long-enough-pass")
    short = runner.invoke(args=["users", "create-admin", "x@example.com", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 8 characters" in short.output
    listed = runner.invoke(args=["users", "list"])
    assert "boss@example.com" in listed.output and "Administrator" in listed.output
