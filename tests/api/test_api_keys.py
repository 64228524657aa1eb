"""API keys: an Administrator creates one for a user (shown once, stored hashed), revokes it; how the API
authenticates (key, revoked, expired, malformed, session + CSRF), and its OpenAPI document and page."""

from __future__ import annotations

import re
from datetime import timedelta

from flask.testing import FlaskClient

from core.api_keys import ApiKey, hash_key
from core.extensions import db
from core.models import AuditEvent
from tests.conftest import csrf_token, make_user
from tests.o365_ops_helpers import api_key_for, bearer


def test_administrator_creates_a_key_sees_it_once_and_revokes_it(admin_client: FlaskClient) -> None:
    make_user("script@example.com", None, "User")
    token = csrf_token(admin_client, "/admin/api-keys")
    created = admin_client.post("/admin/api-keys", data={"csrf_token": token, "email": "Script@example.com",
                                                        "name": "HR onboarding", "expires_in_days": "30"})
    page = created.get_data(as_text=True)
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    assert created.mimetype == "text/html"
    key = re.search(r'id="new-api-key">([^<]+)<', page).group(1)
    assert "shown only this once" in page
    row = db.session.scalars(db.select(ApiKey)).one()
    assert row.key_hash == hash_key(key) and key not in repr(row) and row.user.email == "script@example.com"
    assert row.expires_at is not None
    listing = admin_client.get("/admin/api-keys").get_data(as_text=True)
    assert "HR onboarding" in listing and key not in listing and row.label in listing
    dump = "\n".join(repr(tuple(r)) for t in db.metadata.sorted_tables for r in db.session.execute(t.select()))
    assert key not in dump  # only the hash is stored, and the audit trail never holds it

    assert admin_client.get("/api/v1/datasources", headers=bearer(key)).status_code == 200
    db.session.expire_all()
    assert db.session.get(ApiKey, row.id).last_used_at is not None

    token = csrf_token(admin_client, "/admin/api-keys")
    admin_client.post(f"/admin/api-keys/{row.id}/revoke", data={"csrf_token": token})
    answer = admin_client.get("/api/v1/datasources", headers=bearer(key))
    assert answer.status_code == 401 and answer.get_json()["error"]["code"] == "api_key_revoked"
    actions = set(db.session.scalars(db.select(AuditEvent.action)))
    assert {"api_key.create", "api_key.revoke"} <= actions


def test_key_form_errors_are_shown_beside_the_fields(admin_client: FlaskClient) -> None:
    token = csrf_token(admin_client, "/admin/api-keys")
    page = admin_client.post("/admin/api-keys", data={"csrf_token": token, "email": "nobody@example.com",
                                                      "name": "", "expires_in_days": "0"}).get_data(as_text=True)
    assert "There is no user with this email" in page and "Name the key" in page
    assert db.session.scalar(db.select(db.func.count(ApiKey.id))) == 0


def test_only_administrators_manage_keys(client: FlaskClient) -> None:
    from tests.conftest import sign_in

    make_user("ds@example.com", "datasource-pass", "Manage datasources")
    sign_in(client, "ds@example.com", "datasource-pass")
    assert client.get("/admin/api-keys").status_code == 403


def test_bad_expired_revoked_and_missing_keys_are_401_with_stable_codes(client: FlaskClient) -> None:
    user = make_user("script@example.com", None, "Administrator")
    good = api_key_for(user)
    expired = api_key_for(user, expires_in=timedelta(seconds=-1))
    revoked = api_key_for(user, revoked=True)
    cases = {
        None: "unauthenticated",
        "Bearer": "unauthenticated",
        "Basic abc": "unauthenticated",
        "Bearer gw_nothing": "invalid_api_key",
        f"Bearer {good[:-2]}xx": "invalid_api_key",
        f"Bearer {expired}": "api_key_expired",
        f"Bearer {revoked}": "api_key_revoked",
    }
    for header, code in cases.items():
        answer = client.get("/api/v1/datasources", headers={"Authorization": header} if header else {})
        assert answer.status_code == 401, header
        assert answer.get_json()["error"]["code"] == code, header
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    refused = client.post("/api/v1/datasources/1/groups", headers=bearer(revoked), json={"display_name": "X"})
    assert refused.status_code == 401
    event = db.session.scalars(db.select(AuditEvent).filter_by(action="api.refused")).one()
    assert event.outcome == "refused" and event.actor.startswith("script@example.com (API key gw_")
    assert event.target == "POST /api/v1/datasources/1/groups" and event.detail["error_code"] == "api_key_revoked"
    user.active = False
    db.session.commit()
    answer = client.get("/api/v1/datasources", headers=bearer(good))
    assert answer.get_json()["error"]["code"] == "user_inactive"


def test_session_callers_need_the_csrf_header_for_unsafe_methods(admin_client: FlaskClient) -> None:
    assert admin_client.get("/api/v1/datasources").get_json() == {"datasources": []}
    refused = admin_client.post("/api/v1/datasources/1/groups", json={"display_name": "X"})
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "csrf_failed"
    token = csrf_token(admin_client, "/admin/api-keys")
    passed = admin_client.post("/api/v1/datasources/1/groups", json={"display_name": "X"},
                               headers={"X-CSRFToken": token})
    assert passed.status_code == 404 and passed.get_json()["error"]["code"] == "datasource_not_found"


def test_openapi_document_and_page(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    labels = {op.get("x-seed-label") for path in doc["paths"].values() for op in path.values()}
    assert {"User List", "Group List", "Find Users", "Find Groups", "Create Group", "Add User to Group",
            "Remove User From Group", "Licence Plan List", "Assign Licence to User",
            "Remove Licence from User"} <= labels
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "/datasources/{datasource_id}/groups/{group_id}/members" in page and "api_key_revoked" in page
    assert "<script>" not in page
