"""docs/microsoft.md §1.9, §1.10: the `claims` parameter asking for authentication contexts (`acrs`), `max_age` with a
fresh `auth_time`, and app roles in the ID token's `roles` (over HTTPS, through the pages)."""

from __future__ import annotations

import json
import time

from tests.emulator.support import ADMIN, PLAIN, Browser, Control, jwt_claims, redirect_params

C1 = json.dumps({"id_token": {"acrs": {"essential": True, "values": ["c1"]}}})


def _mfa(browser: Browser, page, action: str = "approve"):  # type: ignore[no-untyped-def]
    assert "Approve sign-in request" in page.text and "<code>c1</code>" in page.text
    return browser.http.post(f"{browser.emu.base_url}/{browser.tenant}/mfa",
                             data={**browser.form_fields(page), "action": action}, allow_redirects=False,
                             timeout=10)


def _id_token(browser: Browser, response) -> dict:  # type: ignore[no-untyped-def]
    body = browser.redeem(redirect_params(response)["code"]).json()
    return jwt_claims(body["id_token"])


def test_acrs_only_when_asked_and_after_the_extra_step(browser: Browser) -> None:
    first = browser.code(ADMIN)
    assert "acrs" not in jwt_claims(browser.redeem(first["code"]).json()["id_token"])
    page = browser.authorize(claims=C1)  # signed in already: only the extra step is shown
    assert page.status_code == 200
    claims = _id_token(browser, _mfa(browser, page))
    assert claims["acrs"] == ["c1"]
    # the session satisfied c1: asking again goes straight through, and still carries acrs
    again = browser.authorize(claims=json.dumps({"id_token": {"acrs": {"essential": True, "value": "c1"}}}))
    assert again.status_code == 302 and _id_token(browser, again)["acrs"] == ["c1"]
    assert "acrs" not in _id_token(browser, browser.authorize())


def test_cancelling_the_extra_step_and_prompt_none(browser: Browser) -> None:
    browser.code(ADMIN)
    params = redirect_params(_mfa(browser, browser.authorize(claims=C1), action="cancel"))
    assert params["error"] == "access_denied" and "AADSTS500121" in params["error_description"]
    params = redirect_params(browser.authorize(claims=C1, prompt="none"))
    assert params["error"] == "interaction_required" and "AADSTS50076" in params["error_description"]


def test_voluntary_request_does_not_prompt_and_bad_claims_json_is_refused(browser: Browser) -> None:
    browser.code(ADMIN)
    voluntary = json.dumps({"id_token": {"acrs": {"essential": False, "values": ["c2"]}}})
    response = browser.authorize(claims=voluntary)
    assert response.status_code == 302 and _id_token(browser, response)["acrs"] == []
    params = redirect_params(browser.authorize(claims="{not json"))
    assert params["error"] == "invalid_request" and "AADSTS90100" in params["error_description"]


def test_max_age_gives_a_fresh_auth_time(browser: Browser, control: Control) -> None:
    params = browser.code(PLAIN)
    old = jwt_claims(browser.redeem(params["code"]).json()["id_token"])["auth_time"]
    control("POST", "/clock", {"shift": 1200})
    reused = browser.authorize()  # no max_age: the session's sign-in stands
    assert _id_token(browser, reused)["auth_time"] == old
    page = browser.authorize(max_age="600")
    assert page.status_code == 200 and 'name="password"' in page.text  # sign in again
    fresh = _id_token(browser, browser.signin(page, PLAIN))["auth_time"]
    assert fresh >= old + 1200 and abs(fresh - (time.time() + 1200)) < 60


def test_app_roles_in_the_roles_claim(browser: Browser, control: Control, fresh_client: dict) -> None:
    client_id = fresh_client["client_id"]
    reader = control("POST", f"/clients/{client_id}/app-roles", {"value": "Reader", "displayName": "Readers"},
                     expect=201)
    assert reader["value"] == "Reader" and reader["isEnabled"] is True and reader["allowedMemberTypes"] == ["User"]
    control("POST", f"/clients/{client_id}/app-roles", {"value": "Approver"}, expect=201)
    assert [r["value"] for r in control("GET", f"/clients/{client_id}/app-roles")["appRoles"]] == \
        ["Approver", "Reader"]
    group = control("POST", "/groups", {"displayName": "Approvers", "mailNickname": "approvers",
                                        "mailEnabled": False, "securityEnabled": True}, expect=201)
    control("POST", f"/groups/{group['id']}/members", {"id": PLAIN}, expect=201)
    assignment = control("POST", f"/clients/{client_id}/app-role-assignments",
                         {"appRole": "Reader", "principal": PLAIN}, expect=201)
    assert assignment["principalType"] == "User" and assignment["appRoleId"] == reader["id"]
    control("POST", f"/clients/{client_id}/app-role-assignments",
            {"appRole": "Approver", "principal": group["id"]}, expect=201)
    browser.use_client(fresh_client)
    token = browser.redeem(browser.code(PLAIN, org=True)["code"]).json()["id_token"]
    assert jwt_claims(token)["roles"] == ["Approver", "Reader"]
    control("DELETE", f"/clients/{client_id}/app-role-assignments", {"appRole": "Reader", "principal": PLAIN})
    token = browser.redeem(redirect_params(browser.authorize())["code"]).json()["id_token"]
    assert jwt_claims(token)["roles"] == ["Approver"]
    admin = Browser(browser.emu).use_client(fresh_client)
    assert "roles" not in jwt_claims(admin.redeem(admin.code(ADMIN, org=True)["code"]).json()["id_token"])
    control("POST", f"/clients/{client_id}/app-role-assignments", {"appRole": "Nope", "principal": PLAIN},
            expect=404)
