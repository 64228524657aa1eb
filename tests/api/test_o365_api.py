"""The JSON API against the emulated tenant: the ten operations and the bulk ones with an API key, who may use
which datasource, every bad input and fault answering a clear error (never a 500, never a silent success), and
the audit trail of writes. The emulator's store is checked after each write."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bulk import service as bulk_service
from core.extensions import db
from core.models import AuditEvent, Datasource
from emulator.server import EmulatorHandle
from jobs.runner import execute_run
from tests.conftest import csrf_token, make_user
from tests.o365_helpers import emulator_env
from tests.o365_ops_helpers import ADMIN_UPN, Tenant, api_key_for, authorized_datasource, bearer


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(emulator)


def _events(operation: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(db.select(AuditEvent).filter_by(operation=operation).order_by(AuditEvent.id)))


def _error(response) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    body = response.get_json()
    assert "error" in body, body
    return response.status_code, body["error"]["code"], body["error"]["message"]


def test_the_ten_operations_with_an_api_key(client: FlaskClient, ds: Datasource, key: str, tenant: Tenant) -> None:
    base, h = f"/api/v1/datasources/{ds.id}", bearer(key)
    listed = client.get("/api/v1/datasources", headers=h).get_json()["datasources"]
    assert [(d["id"], d["read_write"]) for d in listed] == [(ds.id, True)]

    page = client.get(f"{base}/users?page_size=10", headers=h).get_json()
    assert len(page["users"]) == 10 and page["next_cursor"] and page["request_id"]
    second = client.get(f"{base}/users", query_string={"page_size": 10, "cursor": page["next_cursor"]},
                        headers=h).get_json()
    assert not {u["id"] for u in page["users"]} & {u["id"] for u in second["users"]}
    found = client.get(f"{base}/users/find?q=adele", headers=h).get_json()["users"]
    assert [u["user_principal_name"] for u in found] == ["adele.vance@contoso.example"]
    groups = client.get(f"{base}/groups?page_size=5", headers=h).get_json()["groups"]
    assert len(groups) == 5 and all("type" in g and "member_count" in g for g in groups)
    finance = client.get(f"{base}/groups/find?q=Fin", headers=h).get_json()["groups"]
    assert finance[0]["display_name"] == "Finance" and finance[0]["type"] == "mail_enabled_security"
    plans = client.get(f"{base}/licences", headers=h).get_json()["plans"]
    e5 = next(p for p in plans if p["sku_part_number"] == "SPE_E5")
    assert e5["available_units"] == 1 and e5["service_plans"]

    name = f"API group {uuid.uuid4().hex[:6]}"
    created = client.post(f"{base}/groups", headers=h, json={"display_name": name, "group_type": "microsoft365"})
    assert created.status_code == 201, created.get_json()
    gid = created.get_json()["group"]["id"]
    assert tenant.one("SELECT group_types FROM groups WHERE id = ?", gid) == '["Unified"]'
    adele = tenant.user("adele.vance@contoso.example")
    megan, lee = tenant.user("megan.bowen@contoso.example"), tenant.user("lee.gu@contoso.example")
    staffed = client.post(f"{base}/groups", headers=h, json={
        "display_name": "Staffed team", "description": "with owner and members", "owners": [megan],
        "members": [adele, lee]}).get_json()
    staffed_id = staffed["group"]["id"]
    assert staffed["group"]["mail_nickname"] == "staffed-team" and staffed["group"]["type"] == "security"
    assert tenant.members(staffed_id) == {adele, lee}
    assert tenant.one("SELECT member_id FROM memberships WHERE group_id = ? AND relation = 'owner'",
                      staffed_id) == megan
    added = client.post(f"{base}/groups/{gid}/members", headers=h, json={"user_id": adele})
    assert added.status_code == 201 and added.get_json()["outcome"] == "added"
    again = client.post(f"{base}/groups/{gid}/members", headers=h, json={"user_id": adele})
    assert again.status_code == 200 and again.get_json()["outcome"] == "already_member"
    assert tenant.members(gid) == {adele}
    removed = client.delete(f"{base}/groups/{gid}/members/{adele}", headers=h)
    assert removed.status_code == 200 and tenant.members(gid) == set()
    assert _error(client.delete(f"{base}/groups/{gid}/members/{adele}", headers=h))[:2] == (404, "not_a_member")

    sku = tenant.sku("POWER_BI_PRO")
    nowhere = tenant.upn("usage_location IS NULL AND account_enabled = 1")
    uid = tenant.user(nowhere)
    status, code, message = _error(client.post(f"{base}/users/{uid}/licences", headers=h, json={"sku_id": sku}))
    assert (status, code) == (422, "usage_location_required") and "usage location" in message
    assigned = client.post(f"{base}/users/{uid}/licences", headers=h, json={"sku_id": sku, "usage_location": "ie"})
    assert assigned.status_code == 200 and assigned.get_json()["usage_location_set"] == "IE"
    assert sku in tenant.licences(uid) and tenant.one("SELECT usage_location FROM users WHERE id = ?", uid) == "IE"
    assert client.delete(f"{base}/users/{uid}/licences/{sku}", headers=h).status_code == 200
    assert sku not in tenant.licences(uid)
    e3 = next(p for p in plans if p["sku_part_number"] == "ENTERPRISEPACK")
    off = e3["service_plans"][0]["id"]
    partial = client.post(f"{base}/users/{uid}/licences", headers=h,
                          json={"sku_id": e3["sku_id"], "disabled_plans": [off]})
    assert partial.status_code == 200 and partial.get_json()["outcome"] == "assigned"
    assert tenant.one("SELECT disabled_plans FROM user_licenses WHERE user_id = ? AND sku_id = ?",
                      uid, e3["sku_id"]) == f'["{off}"]'

    add_events = _events("Add User to Group")
    assert [e.detail["result"] for e in add_events] == ["added", "already_member"]
    event = add_events[0]
    assert event.outcome == "success" and event.datasource == ds.name and event.action == "o365.add_user_to_group"
    assert "API key gw_" in event.actor and event.detail["request_id"] and event.detail["via"] == "api_key"
    assert event.detail["input"] == {"group_id": gid, "user_id": adele}
    assert [e.outcome for e in _events("Assign Licence to User")] == ["refused", "success", "success"]
    assert _events("Remove User From Group")[-1].outcome == "failure"
    assert not _events("User List")  # reads are not audited


def test_users_outside_connection_users_are_refused_and_refused_writes_audited(
        client: FlaskClient, ds: Datasource, tenant: Tenant) -> None:
    outsider = make_user("outsider@example.com", None, "User")
    key = api_key_for(outsider)
    base, h = f"/api/v1/datasources/{ds.id}", bearer(key)
    assert client.get("/api/v1/datasources", headers=h).get_json() == {"datasources": []}
    status, code, message = _error(client.get(f"{base}/users", headers=h))
    assert (status, code) == (403, "forbidden") and "Connection users" in message
    gid, adele = tenant.group("Legal"), tenant.user("adele.vance@contoso.example")
    before = tenant.members(gid)
    assert _error(client.post(f"{base}/groups/{gid}/members", headers=h, json={"user_id": adele}))[:2] == \
        (403, "forbidden")
    assert tenant.members(gid) == before
    event = _events("Add User to Group")[-1]
    assert event.outcome == "refused" and event.actor.startswith("outsider@example.com (API key")

    ds.user_users = ["outsider@example.com"]  # the datasource's Security lists them: now they may
    db.session.commit()
    assert client.get(f"{base}/users?page_size=2", headers=h).status_code == 200
    assert _error(client.get("/api/v1/datasources/999/users", headers=h))[:2] == (404, "datasource_not_found")


def test_bad_input_gives_clear_errors(client: FlaskClient, ds: Datasource, key: str, tenant: Tenant) -> None:
    base, h = f"/api/v1/datasources/{ds.id}", bearer(key)
    ghost, adele = str(uuid.uuid4()), tenant.user("adele.vance@contoso.example")
    legal = tenant.group("Legal")
    cases = [
        (client.post(f"{base}/groups/{ghost}/members", headers=h, json={"user_id": adele}), 404, "not_found",
         "group"),
        (client.post(f"{base}/groups/{legal}/members", headers=h, json={"user_id": ghost}), 404, "not_found",
         "user"),
        (client.post(f"{base}/groups/not-an-id/members", headers=h, json={"user_id": adele}), 422,
         "invalid_field", "not a valid group id"),
        (client.post(f"{base}/groups/{legal}/members", headers=h, json={}), 422, "invalid_field", "user_id"),
        (client.post(f"{base}/groups/{legal}/members", headers=h, data="nope"), 422, "invalid_field", "JSON"),
        (client.get(f"{base}/users/{ghost}", headers=h), 404, "not_found", "does not exist"),
        (client.get(f"{base}/users/find?q=", headers=h), 422, "invalid_field", "at least one character"),
        (client.get(f"{base}/users?page_size=5000", headers=h), 422, "invalid_field", "between 1 and 999"),
        (client.get(f"{base}/users?cursor=https://evil.example/v1.0/users", headers=h), 422, "invalid_field",
         "page link"),
        (client.post(f"{base}/groups", headers=h, json={"display_name": "Taken", "mail_nickname": "Finance"}),
         409, "mail_nickname_taken", "already used"),
        (client.post(f"{base}/groups", headers=h, json={"display_name": "Bad", "mail_nickname": "bad nick@"}),
         422, "invalid_field", "may not contain"),
        (client.post(f"{base}/groups", headers=h, json={"display_name": "X", "group_type": "distribution"}),
         422, "invalid_field", "Exchange admin center"),
        (client.post(f"{base}/users/{adele}/licences", headers=h, json={"sku_id": ghost}), 404, "not_found",
         "not subscribed"),
        (client.delete(f"{base}/users/{adele}/licences/{tenant.sku('SPE_E5')}", headers=h), 400,
         "invalid_request", "does not hold"),
    ]
    for response, status, code, fragment in cases:
        got_status, got_code, message = _error(response)
        assert (got_status, got_code) == (status, code), (message, status, code)
        assert fragment in message, message
    taken = client.post(f"{base}/groups", headers=h, json={"display_name": "Taken", "mail_nickname": "Finance"})
    assert taken.get_json()["error"]["suggestion"] == "Finance-2" and taken.get_json()["error"]["field"] == \
        "mail_nickname"

    e5 = tenant.sku("SPE_E5")
    located = [r[0] for r in tenant.conn().execute(
        "SELECT id FROM users WHERE usage_location IS NOT NULL AND account_enabled = 1 AND id NOT IN "
        "(SELECT user_id FROM user_licenses WHERE sku_id = ?) ORDER BY seq LIMIT 2", (e5,))]
    assert client.post(f"{base}/users/{located[0]}/licences", headers=h, json={"sku_id": e5}).status_code == 200
    status, code, message = _error(client.post(f"{base}/users/{located[1]}/licences", headers=h, json={"sku_id": e5}))
    assert (status, code) == (409, "no_seats_left") and "10 of 10 used" in message
    assert e5 not in tenant.licences(located[1])


def test_read_only_datasource_refuses_writes_before_sending(client: FlaskClient, admin_client: FlaskClient,
                                                           emulator: EmulatorHandle, app: Flask,
                                                           key: str, tenant: Tenant) -> None:
    ds = authorized_datasource(admin_client, emulator, app, name="Read only", read_write=False)
    base, h = f"/api/v1/datasources/{ds.id}", bearer(key)
    gid, adele = tenant.group("Legal"), tenant.user("adele.vance@contoso.example")
    tenant.control("DELETE", "counters")
    for response in (
        client.post(f"{base}/groups/{gid}/members", headers=h, json={"user_id": adele}),
        client.post(f"{base}/groups", headers=h, json={"display_name": "Never"}),
        client.post(f"{base}/bulk/group-members", headers=h, json={"group_id": gid, "user_ids": [adele]}),
    ):
        status, code, message = _error(response)
        assert (status, code) == (403, "write_not_allowed") and "read-only" in message
        assert 'tick "Read and write users & groups"' in message
    assert tenant.control("GET", "counters").json()["total"] == 0  # nothing reached Graph
    assert adele not in tenant.members(gid)
    assert [e.outcome for e in _events("Add User to Group")] == ["refused"]

    ds.read_write = True  # ticked after a read-only grant: the grant still lacks the write permissions
    db.session.commit()
    status, code, message = _error(client.post(f"{base}/groups/{gid}/members", headers=h, json={"user_id": adele}))
    assert (status, code) == (403, "write_not_allowed") and "grant lacks" in message and "Re-Authorize" in message
    assert adele not in tenant.members(gid)


def test_faults_answer_clear_errors(client: FlaskClient, ds: Datasource, key: str, tenant: Tenant) -> None:
    base, h = f"/api/v1/datasources/{ds.id}", bearer(key)
    gid, adele = tenant.group("Legal"), tenant.user("adele.vance@contoso.example")

    tenant.fault(kind="throttle", path="/v1.0/users", retry_after=0, seconds=10)
    response = client.get(f"{base}/users", headers=h)
    status, code, message = _error(response)
    assert (status, code) == (429, "throttled") and "Wait a minute" in message and response.headers["Retry-After"]
    tenant.control("DELETE", "faults")

    tenant.fault(kind="error", status=503, path="/subscribedSkus", seconds=10)
    status, code, message = _error(client.get(f"{base}/licences", headers=h))
    assert (status, code) == (503, "graph_unavailable") and "Try again" in message
    tenant.control("DELETE", "faults")

    tenant.fault(kind="delay", delay_ms=1500, path="/v1.0/groups", method="GET", seconds=10)
    status, code, message = _error(client.get(f"{base}/groups", headers=h))
    assert (status, code) == (503, "graph_unavailable")
    tenant.control("DELETE", "faults")

    tenant.fault(kind="drop", path="/members/$ref", method="POST", count=1)
    status, code, message = _error(client.post(f"{base}/groups/{gid}/members", headers=h, json={"user_id": adele}))
    assert (status, code) == (503, "graph_unavailable") and "may or may not have been applied" in message
    event = _events("Add User to Group")[-1]
    assert event.outcome == "failure" and event.detail["error_code"] == "graph_unavailable"

    tenant.fault(kind="error", status=500, path="/v1.0/groups", method="POST", count=1)
    status, code, _ = _error(client.post(f"{base}/groups", headers=h, json={"display_name": "Five hundred"}))
    assert (status, code) == (503, "graph_unavailable")
    assert tenant.one("SELECT count(*) FROM groups WHERE display_name = 'Five hundred'") == 0

    tenant.control("POST", "revoke", {"user": ADMIN_UPN})
    tenant.fault(kind="error", status=401, path="/v1.0/", count=1)
    status, code, message = _error(client.get(f"{base}/users", headers=h))
    assert (status, code) == (409, "reauthorization_required") and "Re-Authorize" in message
    db.session.expire_all()
    assert db.session.get(Datasource, ds.id).status == Datasource.NEEDS_REAUTHORIZATION
    status, code, _ = _error(client.post(f"{base}/groups/{gid}/members", headers=h, json={"user_id": adele}))
    assert (status, code) == (409, "reauthorization_required")
    assert _events("Add User to Group")[-1].outcome == "failure"


def test_the_old_bulk_operations_are_jobs_too(client: FlaskClient, ds: Datasource, key: str, tenant: Tenant,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """bulk/group-members and bulk/group-licences (deprecated) run nothing inside the request: they make the bulk
    job POST bulk-jobs makes and answer 202 with it queued (201 previewed with dry_run), `Location` the job."""
    queued: list[int] = []
    monkeypatch.setattr(bulk_service, "enqueue_run", queued.append)
    base, h = f"/api/v1/datasources/{ds.id}", bearer(key)
    gid = client.post(f"{base}/groups", headers=h, json={"display_name": "Bulk"}).get_json()["group"]["id"]
    users = [r[0] for r in tenant.conn().execute(
        "SELECT id FROM users WHERE account_enabled = 1 ORDER BY seq LIMIT 25")]
    ghost = str(uuid.uuid4())
    answer = client.post(f"{base}/bulk/group-members", headers=h,
                         json={"group_id": gid, "user_ids": [*users, ghost, "nonsense"]})
    job = answer.get_json()
    assert answer.status_code == 202, job
    assert (job["status"], job["action"], job["total"]) == ("queued", "add", 25)
    assert job["unchanged"] == {"not_found": 1, "invalid": 1}
    assert answer.headers["Location"] == f"{base}/bulk-jobs/{job['id']}" and answer.headers["Deprecation"] == "true"
    assert not tenant.members(gid) and len(queued) == 1  # nothing written in the request: the worker does it
    execute_run(queued[-1])
    done = client.get(answer.headers["Location"], headers=h).get_json()
    assert (done["status"], done["result"]) == ("done", "success: 25 added") and tenant.members(gid) == set(users)

    sku = tenant.sku("POWER_BI_PRO")
    dry = client.post(f"{base}/bulk/group-licences", headers=h, json={"group_id": gid, "sku_id": sku,
                                                                        "dry_run": True})
    preview = dry.get_json()
    assert dry.status_code == 201 and preview["status"] == "previewed" and len(queued) == 1
    planned = {i["object_id"] for i in client.get(f"{base}/bulk-jobs/{preview['id']}/results", headers=h,
                                                  query_string={"page_size": 100}).get_json()["items"]}
    assert planned and all(sku not in tenant.licences(u) for u in planned)
    answer = client.post(f"{base}/bulk/group-licences", headers=h, json={"group_id": gid, "sku_id": sku})
    assert answer.status_code == 202 and answer.get_json()["total"] == len(planned)
    execute_run(queued[-1])
    assert all(sku in tenant.licences(u) for u in planned)
    assert client.get(answer.headers["Location"], headers=h).get_json()["counts"] == {"assigned": len(planned)}
    again = client.post(f"{base}/bulk/group-licences", headers=h, json={"group_id": gid, "sku_id": sku})
    assert again.status_code == 201 and again.get_json()["total"] == 0 and len(queued) == 2  # nothing to do

    doc = client.get("/api/v1/openapi.json").get_json()
    for path in ("/datasources/{datasource_id}/bulk/group-members", "/datasources/{datasource_id}/bulk/group-licences"):
        op = doc["paths"][path]["post"]
        assert op["deprecated"] is True and set(op["responses"]) >= {"201", "202"}
        assert op["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/BulkJobOut")


def test_session_caller_with_csrf_header(admin_client: FlaskClient, ds: Datasource, tenant: Tenant) -> None:
    gid, adele = tenant.group("Legal"), tenant.user("adele.vance@contoso.example")
    url = f"/api/v1/datasources/{ds.id}/groups/{gid}/members"
    assert _error(admin_client.post(url, json={"user_id": adele}))[:2] == (400, "csrf_failed")
    token = csrf_token(admin_client, f"/admin/datasources/{ds.id}")
    response = admin_client.post(url, json={"user_id": adele}, headers={"X-CSRFToken": token})
    assert response.status_code in (200, 201) and adele in tenant.members(gid)
    event = _events("Add User to Group")[-1]
    assert event.actor == "admin@example.com" and event.detail["via"] == "session"


def test_lists_take_the_pages_search_filter_sort_and_signed_cursors(client: FlaskClient, ds: Datasource, key: str,
                                                                      tenant: Tenant) -> None:
    base, h = f"/api/v1/datasources/{ds.id}", bearer(key)
    users = tenant.one("SELECT count(*) FROM users")
    page = client.get(f"{base}/users?page_size=20&sort=-displayName", headers=h).get_json()
    assert page["total"] == users and page["page"] == 1 and page["previous_cursor"] is None
    assert "https://" not in page["next_cursor"] and "skiptoken" not in page["next_cursor"]
    names = [u["display_name"] for u in page["users"]]
    assert names == sorted(names, key=str.lower, reverse=True)
    second = client.get(f"{base}/users", query_string={"page_size": 20, "sort": "-displayName",
                                                       "cursor": page["next_cursor"]}, headers=h).get_json()
    assert second["page"] == 2 and second["total"] == users and second["previous_cursor"] == ""
    disabled = client.get(f"{base}/users?filter=disabled&filter=department:Sales", headers=h).get_json()
    assert disabled["total"] == tenant.one("SELECT count(*) FROM users WHERE account_enabled = 0 AND "
                                           "department = 'Sales'") == len(disabled["users"])
    unified = client.get(f"{base}/groups?filter=type:microsoft365&member_count=false", headers=h).get_json()
    assert unified["total"] == tenant.one("SELECT count(*) FROM groups WHERE group_types LIKE '%Unified%'")

    everyone = tenant.group("All Company")
    found = client.get(f"{base}/groups/{everyone}?q=megan", headers=h).get_json()["members"]
    assert found["total"] == 1 and found["users_only"] and found["members"][0]["display_name"] == "Megan Bowen"
    megan = tenant.user("megan.bowen@contoso.example")
    assert client.get(f"{base}/groups/{everyone}/members/{megan}", headers=h).get_json()["member"] is True
    legal = tenant.group("Legal")
    check = client.get(f"{base}/groups/{legal}/members/megan.bowen@contoso.example", headers=h).get_json()
    assert check == {"member": False, "user": None}

    detail = client.get(f"{base}/users/{megan}", headers=h).get_json()
    assert detail["groups_total"] == len(detail["groups"]) and detail["groups_next_cursor"] is None
    groups = client.get(f"{base}/users/{megan}/groups?page_size=2", headers=h).get_json()
    assert groups["total"] == detail["groups_total"] and len(groups["groups"]) == 2 and groups["next_cursor"]

    for url, field, text in (
        (f"{base}/users?filter=nope", "filter", "Unknown filter"),
        (f"{base}/users?sort=jobTitle", "sort", "Sort by one of"),
        (f"{base}/groups?filter=enabled", "filter", "Unknown filter"),
        (f"{base}/users?page_size=10&cursor={page['next_cursor']}", "cursor", "not valid here"),
    ):
        response = client.get(url, headers=h)
        body = response.get_json()["error"]
        assert (response.status_code, body["code"], body["field"]) == (422, "invalid_field", field), body
        assert text in body["message"]
