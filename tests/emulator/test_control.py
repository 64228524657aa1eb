"""The control API: fault injection (every kind, scope, filter and limit), counters, revocation, delta expiry,
clock, key rotation, directory and client changes."""

from __future__ import annotations

import time

import pytest
import requests

from emulator.control import Fault
from tests.emulator.support import ADMIN, GRAPH, PLAIN, Browser, Control, https_session, jwt_header, redirect_params


def graph_get(emu, path: str = "/v1.0/users", token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return https_session(emu.ca_path).get(f"{emu.base_url}{path}", headers=headers, timeout=10)


def app_token(emu) -> str:
    return Browser(emu).token(grant_type="client_credentials", scope=f"{GRAPH}.default").json()["access_token"]


def test_control_key_is_required(emu) -> None:
    http = https_session(emu.ca_path)
    assert http.get(f"{emu.base_url}/_emulator/status").status_code == 401
    resp = http.get(f"{emu.base_url}/_emulator/status", headers={"Authorization": "Bearer wrong"})
    assert resp.status_code == 401 and "control key" in resp.json()["error"]


def test_status_and_config(control: Control, emu) -> None:
    status = control("GET", "/status")
    assert status["ok"] is True and status["faults"] == 0
    config = control("GET", "/config")
    assert config["base_url"] == emu.base_url and config["tenants"][0]["domain"] == "contoso.example"


def test_throttle_every_nth_graph_call_with_retry_after(control: Control, emu) -> None:
    token = app_token(emu)
    fault = control("POST", "/faults", {"kind": "throttle", "every": 3, "retry_after": 7}, expect=201)
    statuses = [graph_get(emu, token=token) for _ in range(6)]
    assert [r.status_code for r in statuses] == [200, 200, 429, 200, 200, 429]
    throttled = statuses[2]
    assert throttled.headers["Retry-After"] == "7"
    body = throttled.json()["error"]
    assert body["code"] == "TooManyRequests" and set(body["innerError"]) >= {"date", "request-id"}
    listed = control("GET", "/faults")["faults"]
    assert listed[0]["id"] == fault["id"] and listed[0]["hits"] == 2 and listed[0]["seen"] == 6


def test_throttle_for_a_time_window(control: Control, emu) -> None:
    control("POST", "/faults", {"kind": "throttle", "seconds": 0.5}, expect=201)
    assert graph_get(emu).status_code == 429
    assert graph_get(emu).headers["Retry-After"] == "1"
    time.sleep(0.6)
    assert graph_get(emu).status_code == 401  # back to normal (no token)
    assert control("GET", "/faults")["faults"] == []


@pytest.mark.parametrize(("status", "code"), [(503, "serviceNotAvailable"), (504, "GatewayTimeout")])
def test_server_errors(control: Control, emu, status: int, code: str) -> None:
    control("POST", "/faults", {"kind": "error", "status": status, "count": 1}, expect=201)
    resp = graph_get(emu)
    assert resp.status_code == status and resp.json()["error"]["code"] == code
    assert graph_get(emu).status_code == 401  # count limit reached


def test_custom_error_code_and_message(control: Control, emu) -> None:
    control("POST", "/faults", {"kind": "error", "status": 429, "code": "activityLimitReached",
                                "message": "Slow down", "retry_after": 3}, expect=201)
    resp = graph_get(emu)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
    assert resp.json()["error"]["code"] == "activityLimitReached" and resp.json()["error"]["message"] == "Slow down"


def test_slow_responses(control: Control, emu) -> None:
    control("POST", "/faults", {"kind": "delay", "delay_ms": 300}, expect=201)
    start = time.perf_counter()
    resp = graph_get(emu)
    assert time.perf_counter() - start >= 0.3 and resp.status_code == 401


def test_connection_drop(control: Control, emu) -> None:
    control("POST", "/faults", {"kind": "drop", "count": 1}, expect=201)
    with pytest.raises(requests.ConnectionError):
        graph_get(emu)
    assert graph_get(emu).status_code == 401


def test_connection_drop_in_test_client(app) -> None:
    app.extensions["emulator.control"].add(Fault(kind="drop", count=1))
    with pytest.raises(ConnectionResetError):
        app.test_client().get("/v1.0/users")
    app.extensions["emulator.control"].faults.clear()


def test_path_and_method_filters(control: Control, emu) -> None:
    control("POST", "/faults", {"kind": "error", "status": 503, "path": "/groups", "method": "GET"}, expect=201)
    assert graph_get(emu, "/v1.0/users").status_code == 401
    assert graph_get(emu, "/v1.0/groups").status_code == 503


def test_token_endpoint_faults_use_entra_errors(control: Control, emu, browser: Browser) -> None:
    control("POST", "/faults", {"kind": "throttle", "scope": "token", "retry_after": 2, "count": 1}, expect=201)
    resp = browser.token(grant_type="client_credentials", scope=f"{GRAPH}.default")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "2"
    assert resp.json()["error"] == "temporarily_unavailable" and resp.headers["Cache-Control"] == "no-store, no-cache"
    assert graph_get(emu).status_code == 401  # Graph untouched
    control("POST", "/faults", {"kind": "error", "scope": "token", "status": 503, "count": 1}, expect=201)
    resp = browser.token(grant_type="client_credentials", scope=f"{GRAPH}.default")
    assert resp.status_code == 503 and resp.json()["error_codes"] == [90033]
    assert browser.token(grant_type="client_credentials", scope=f"{GRAPH}.default").status_code == 200


@pytest.mark.parametrize(("aadsts", "error", "status", "suberror"), [
    (700082, "invalid_grant", 400, None), (50173, "invalid_grant", 400, "bad_token"),
    (65001, "invalid_grant", 400, "consent_required"), (50076, "invalid_grant", 400, "basic_action"),
    (54005, "invalid_grant", 400, None), (7000215, "invalid_client", 401, None)])
def test_switchable_token_errors(control: Control, browser: Browser, aadsts: int, error: str, status: int,
                                 suberror: str | None) -> None:
    control("POST", "/faults", {"kind": "aadsts", "aadsts": aadsts, "count": 1}, expect=201)
    resp = browser.token(grant_type="client_credentials", scope=f"{GRAPH}.default")
    body = resp.json()
    assert resp.status_code == status and body["error"] == error and body["error_codes"] == [aadsts]
    assert body.get("suberror") == suberror


def test_bad_fault_requests(control: Control) -> None:
    assert "kind" in control("POST", "/faults", {"kind": "explode"}, expect=400)["error"]
    assert "scope" in control("POST", "/faults", {"kind": "drop", "scope": "moon"}, expect=400)["error"]
    assert "unknown" in control("POST", "/faults", {"kind": "drop", "colour": 1}, expect=400)["error"]
    assert control("POST", "/faults", {"kind": "aadsts", "aadsts": 1}, expect=400)


def test_clear_and_delete_faults(control: Control, emu) -> None:
    first = control("POST", "/faults", {"kind": "error"}, expect=201)
    control("POST", "/faults", {"kind": "error"}, expect=201)
    assert control("DELETE", f"/faults/{first['id']}")["removed"] == 1
    control("DELETE", f"/faults/{first['id']}", expect=404)
    assert control("DELETE", "/faults")["removed"] == 1
    assert graph_get(emu).status_code == 401


def test_counters_count_graph_and_entra_calls_by_rule(control: Control, emu, browser: Browser) -> None:
    control("DELETE", "/counters")
    token = app_token(emu)
    graph_get(emu, token=token)
    graph_get(emu, "/v1.0/users?$top=1", token=token)
    graph_get(emu, "/v1.0/groups", token=token)
    data = control("GET", "/counters?reset=1")
    assert data["counters"]["GET /v1.0/users"] == 2
    assert data["counters"]["GET /v1.0/groups"] == 1
    assert data["counters"]["POST /<tenant>/oauth2/v2.0/token"] == 1
    assert data["graph"] == 3 and data["total"] == 4
    assert control("GET", "/counters")["counters"] == {}


def test_revoke_user_refresh_tokens(control: Control, browser: Browser) -> None:
    body = browser.redeem(browser.code(PLAIN)["code"]).json()
    assert control("POST", "/revoke", {"user": PLAIN})["revoked"] >= 1
    resp = browser.token(grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert resp.status_code == 400 and resp.json()["error_codes"] == [50173]
    assert resp.json()["suberror"] == "bad_token"
    assert control("POST", "/revoke", {"user": "nobody@contoso.example"}, expect=404)


def test_revoke_grant_withdraws_consent(control: Control, emu, fresh_client: dict) -> None:
    browser = Browser(emu).use_client(fresh_client)
    scope = f"openid offline_access {GRAPH}User.Read"
    rt = browser.redeem(browser.code(PLAIN, scope=scope)["code"]).json()["refresh_token"]
    result = control("POST", "/grants/revoke", {"client_id": fresh_client["client_id"], "user": PLAIN})
    assert result == {"grants_removed": 1, "refresh_tokens": 1, "subscriptions_challenged": []}
    resp = browser.token(grant_type="refresh_token", refresh_token=rt)
    assert resp.status_code == 400 and resp.json()["error_codes"] == [65001]
    assert resp.json()["suberror"] == "consent_required"
    page = browser.authorize(scope=scope)
    assert page.status_code == 200 and "Permissions requested" in page.text


def test_expire_delta_tokens(control: Control, emu) -> None:
    token = app_token(emu)
    http = https_session(emu.ca_path)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{emu.base_url}/v1.0/groups/delta?$select=displayName"
    while True:
        page = http.get(url, headers=headers).json()
        if "@odata.deltaLink" in page:
            break
        url = page["@odata.nextLink"]
    before = control("GET", "/status")["delta_epoch"]
    assert control("POST", "/delta/expire")["delta_epoch"] == before + 1
    resp = http.get(page["@odata.deltaLink"], headers=headers)
    assert resp.status_code == 410 and resp.json()["error"]["code"] == "syncStateNotFound"


def test_clock_shift_set_and_reset(control: Control) -> None:
    start = control("GET", "/clock")
    shifted = control("POST", "/clock", {"shift": 3600})
    assert shifted["offset"] == 3600 and shifted["now"] - start["now"] >= 3599
    assert control("POST", "/clock", {"shift": 60})["offset"] == 3660
    assert control("POST", "/clock", {"offset": -10})["offset"] == -10
    assert control("POST", "/clock", {"reset": True})["offset"] == 0
    control("POST", "/clock", {}, expect=400)


def test_rotate_signing_keys(control: Control, emu, browser: Browser) -> None:
    old_token = app_token(emu)
    old_kid = jwt_header(old_token)["kid"]
    result = control("POST", "/keys/rotate")
    assert result["previous_kid"] == old_kid and result["active_kid"] != old_kid
    keys = browser.http.get(f"{emu.base_url}/common/discovery/v2.0/keys").json()["keys"]
    assert {result["active_kid"], old_kid} <= {k["kid"] for k in keys} and len(keys) >= 2
    new_token = app_token(emu)
    assert jwt_header(new_token)["kid"] == result["active_kid"]
    assert graph_get(emu, "/v1.0/users?$top=1", token=old_token).status_code == 200
    assert graph_get(emu, "/v1.0/users?$top=1", token=new_token).status_code == 200


def test_directory_changes_through_the_control_api(control: Control, emu) -> None:
    token = app_token(emu)
    user = control("POST", "/users", {"displayName": "Ctl User", "userPrincipalName": "ctl.user@contoso.example",
                                      "accountEnabled": True, "mailNickname": "ctl.user"}, expect=201)
    assert graph_get(emu, f"/v1.0/users/{user['id']}", token=token).json()["displayName"] == "Ctl User"
    control("PATCH", f"/users/{user['id']}", {"displayName": "Ctl User 2"})
    assert graph_get(emu, f"/v1.0/users/{user['id']}", token=token).json()["displayName"] == "Ctl User 2"
    group = control("POST", "/groups", {"displayName": "Ctl Group", "mailNickname": "ctlgroup",
                                        "mailEnabled": False, "securityEnabled": True}, expect=201)
    control("POST", f"/groups/{group['id']}/members", {"id": "ctl.user@contoso.example"}, expect=201)
    members = graph_get(emu, f"/v1.0/groups/{group['id']}/members", token=token).json()["value"]
    assert [m["id"] for m in members] == [user["id"]]
    dup = control("POST", f"/groups/{group['id']}/members", {"id": user["id"]}, expect=400)
    assert dup["error"]["code"] == "Request_BadRequest"
    control("DELETE", f"/groups/{group['id']}/members/{user['id']}")
    assert graph_get(emu, f"/v1.0/groups/{group['id']}/members", token=token).json()["value"] == []
    control("PATCH", f"/groups/{group['id']}", {"description": "changed"})
    control("DELETE", f"/groups/{group['id']}")
    control("DELETE", f"/users/{user['id']}")
    assert graph_get(emu, f"/v1.0/users/{user['id']}", token=token).status_code == 404
    control("DELETE", "/users/nobody@contoso.example", expect=404)


def test_register_and_update_clients(control: Control, emu) -> None:
    client = control("POST", "/clients", {"client_id": "11111111-2222-3333-4444-555555555555",
                                          "client_secret": "s3cret", "name": "Other",
                                          "redirect_uris": ["https://other.example/cb"]}, expect=201)
    assert client["client_secret"] == "s3cret" and client["redirect_uris"] == ["https://other.example/cb"]
    control("PATCH", f"/clients/{client['client_id']}", {"redirect_uris": ["https://other.example/cb2"],
                                                         "group_membership_claims": False})
    listed = {c["client_id"]: c for c in control("GET", "/clients")["clients"]}
    assert listed[client["client_id"]]["redirect_uris"] == ["https://other.example/cb2"]
    assert listed[client["client_id"]]["group_membership_claims"] is False
    assert emu.config["client_id"] in listed
    control("PATCH", "/clients/nope", {"name": "x"}, expect=404)
    control("POST", "/clients", {"colour": "red"}, expect=400)
    control("POST", "/clients", {"redirect_uris": "https://x.example"}, expect=400)
    browser = Browser(emu).use_client(client)
    page = browser.authorize(redirect_uri="https://other.example/cb2")
    assert page.status_code == 200
    params = redirect_params(browser.signin(page, ADMIN))
    assert "code" in params


def test_keys_rotated_out_no_longer_verify(control: Control, emu) -> None:
    old_token = app_token(emu)
    for _ in range(3):
        control("POST", "/keys/rotate")
    keys = https_session(emu.ca_path).get(f"{emu.base_url}/common/discovery/v2.0/keys").json()["keys"]
    assert jwt_header(old_token)["kid"] not in {k["kid"] for k in keys} and len(keys) == 3
    resp = graph_get(emu, "/v1.0/users?$top=1", token=old_token)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_rate_fault_throttles_by_resource_units_and_batch_items_one_by_one(control: Control, emu) -> None:
    """Microsoft's identity throttling: a bucket of resource units; GET /users?$select costs 2 - 1 = 1 unit, GET
    /users 2; a $batch is not charged, its requests are, each on its own, with their own Retry-After."""
    token = app_token(emu)
    control("POST", "/faults", {"kind": "rate", "limit": 6, "window": 30}, expect=201)
    first = graph_get(emu, "/v1.0/users?$select=id", token=token)
    assert first.status_code == 200 and first.headers["x-ms-resource-unit"] == "1"
    assert graph_get(emu, "/v1.0/users", token=token).headers["x-ms-resource-unit"] == "2"
    http = https_session(emu.ca_path)
    batch = http.post(f"{emu.base_url}/v1.0/$batch", headers={"Authorization": f"Bearer {token}"}, timeout=10, json={
        "requests": [{"id": str(n), "method": "GET", "url": "/users?$select=id"} for n in range(5)]})
    assert batch.status_code == 200 and "x-ms-resource-unit" not in batch.headers  # the envelope costs nothing
    answers = sorted(batch.json()["responses"], key=lambda a: int(a["id"]))
    assert [a["status"] for a in answers] == [200, 200, 200, 429, 429]  # 3 units left of 6
    throttled = answers[3]["headers"]
    assert 1 <= int(throttled["Retry-After"]) <= 30 and throttled["x-ms-throttle-information"] == \
        "ResourceUnitLimitExceeded"
    assert throttled["x-ms-throttle-scope"].startswith("Tenant_Application/ReadWrite/")
    assert graph_get(emu, "/v1.0/users?$select=id", token=token).status_code == 429
    assert control("POST", "/faults", {"kind": "rate"}, expect=400)["error"].startswith("a rate fault needs")
