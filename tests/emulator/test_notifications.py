"""Change notifications (docs/microsoft.md §10): Graph's /subscriptions with the validation handshake, notifications
posted to a subscriber for user and group changes (membership included), batching, retries, expiry, lifecycle
notifications on demand, and revoked or disabled users' refresh tokens refused. A small HTTP receiver on the
loopback plays the subscriber."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from emulator import notifications
from emulator.server import EmulatorHandle, ssl_context
from tests.emulator.graph_support import Graph
from tests.emulator.support import GRAPH, Browser, Control, https_session

MAX_MINUTES = 41760


class Receiver:
    """A subscriber: echoes validation tokens (unless told otherwise) and records every POST."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.posts: list[dict[str, Any]] = []
        self.validations: list[dict[str, Any]] = []
        self.echo = "token"            # token | wrong | 404 | html
        self.fail_next = 0             # answer this many notification POSTs with 503
        self.status = 202
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                query = parse_qs(urlsplit(self.path).query)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "validationToken" in query:
                    receiver._validate(self, query["validationToken"][0])
                    return
                with receiver.lock:
                    failing = receiver.fail_next > 0
                    receiver.fail_next -= int(failing)
                    receiver.posts.append({"path": urlsplit(self.path).path, "body": json.loads(body),
                                           "content_type": self.headers.get("Content-Type"), "failed": failing})
                self.send_response(503 if failing else receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_port}"

    def _validate(self, handler: BaseHTTPRequestHandler, token: str) -> None:
        with self.lock:
            self.validations.append({"token": token, "content_type": handler.headers.get("Content-Type"),
                                     "path": urlsplit(handler.path).path})
        status, ctype, text = 200, "text/plain; charset=utf-8", token
        if self.echo == "wrong":
            text = token + "x"
        elif self.echo == "404":
            status = 404
        elif self.echo == "html":
            ctype = "text/html"
        elif self.echo == "slow":
            time.sleep(1)
        data = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def items(self, path: str | None = None) -> list[dict]:
        with self.lock:
            return [i for p in self.posts if not p["failed"] and (path is None or p["path"] == path)
                    for i in p["body"]["value"]]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def notes(emu: EmulatorHandle, control: Control) -> Iterator[Control]:
    """The control API with fast delivery retries; subscriptions and delivery state are cleared afterwards."""
    control("POST", "/notifications/settings", {"retry_base": 0.05, "retry_max": 0.2, "poll": 0.2})
    yield control
    control("DELETE", "/subscriptions")
    control("DELETE", "/notifications")
    control("POST", "/notifications/settings", {"retry_base": 10, "retry_max": 600, "retry_window": 14400,
                                                 "batch_size": 100, "poll": 0.5})


@pytest.fixture
def graph_api(emu: EmulatorHandle) -> Any:
    """Graph over HTTPS with the gateway client's app-only token (client credentials)."""
    http = https_session(emu.ca_path)
    token = http.post(f"{emu.base_url}/{emu.tenant_id}/oauth2/v2.0/token",
                      data={"client_id": emu.config["client_id"], "client_secret": emu.config["client_secret"],
                            "grant_type": "client_credentials", "scope": f"{GRAPH}.default"}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"

    def call(method: str, path: str, body: Any = None) -> requests.Response:
        return http.request(method, f"{emu.base_url}/v1.0{path}", json=body, timeout=20)
    return call


def expiry(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def subscribe(graph_api: Any, receiver: Receiver, resource: str = "users", *, minutes: float = 60,
              change: str = "updated,deleted", state: str | None = "s3cret-state", lifecycle: bool = False,
              path: str = "/notify") -> dict:
    body = {"changeType": change, "notificationUrl": receiver.url + path, "resource": resource,
            "expirationDateTime": expiry(minutes)}
    if state is not None:
        body["clientState"] = state
    if lifecycle:
        body["lifecycleNotificationUrl"] = receiver.url + "/lifecycle"
    resp = graph_api("POST", "/subscriptions", body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def new_user(control: Control, name: str) -> dict:
    return control("POST", "/users", {"displayName": name, "userPrincipalName": f"{name}@contoso.example",
                                      "accountEnabled": True, "passwordProfile": {"password": "demo"}}, expect=201)


def settle(control: Control) -> None:
    assert control("POST", "/notifications/wait", {"timeout": 10})["idle"]


def graph_error(resp: requests.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code
    return resp.json()["error"]["message"]


# ---------------------------------------------------------------------------------------------- subscriptions


def test_create_validates_the_endpoint_and_answers_graphs_subscription(graph_api, receiver: Receiver,
                                                                         notes: Control, emu) -> None:
    sub = subscribe(graph_api, receiver, lifecycle=True)
    assert [v["path"] for v in receiver.validations] == ["/notify", "/lifecycle"]
    token = receiver.validations[0]["token"]
    assert token.startswith("Validation: ") and " " in token  # URL-decoded by the subscriber
    assert receiver.validations[0]["content_type"].startswith("text/plain")
    assert set(sub) >= {"@odata.context", "id", "resource", "applicationId", "changeType", "clientState",
                        "notificationUrl", "lifecycleNotificationUrl", "expirationDateTime", "creatorId",
                        "includeResourceData", "latestSupportedTlsVersion"}
    assert sub["applicationId"] == emu.config["client_id"] and sub["changeType"] == "updated,deleted"
    assert sub["clientState"] == "s3cret-state" and sub["latestSupportedTlsVersion"] == "v1_2"
    assert sub["expirationDateTime"].endswith("Z") and len(sub["expirationDateTime"].split(".")[1]) == 8
    listed = graph_api("GET", "/subscriptions").json()["value"]
    assert [s["id"] for s in listed] == [sub["id"]]
    assert graph_api("GET", f"/subscriptions/{sub['id']}").json()["notificationUrl"] == receiver.url + "/notify"
    renewed = graph_api("PATCH", f"/subscriptions/{sub['id']}", {"expirationDateTime": expiry(MAX_MINUTES - 5)})
    assert renewed.status_code == 200 and renewed.json()["expirationDateTime"] != sub["expirationDateTime"]
    assert len(receiver.validations) == 2  # a renewal alone is not validated again
    moved = graph_api("PATCH", f"/subscriptions/{sub['id']}", {"notificationUrl": receiver.url + "/moved"})
    assert moved.status_code == 200 and receiver.validations[-1]["path"] == "/moved"
    assert graph_api("POST", f"/subscriptions/{sub['id']}/reauthorize").status_code == 204
    assert graph_api("DELETE", f"/subscriptions/{sub['id']}").status_code == 204
    graph_error(graph_api("GET", f"/subscriptions/{sub['id']}"), 404, "ResourceNotFound")
    assert notes("GET", "/notifications")["stats"]["validations"] == 3


@pytest.mark.parametrize("echo", ["wrong", "404", "html"])
def test_failed_handshake_refuses_the_subscription(graph_api, receiver: Receiver, notes: Control,
                                                   echo: str) -> None:
    receiver.echo = echo
    resp = graph_api("POST", "/subscriptions", {"changeType": "updated", "notificationUrl": receiver.url + "/n",
                                                "resource": "users", "expirationDateTime": expiry(60)})
    assert graph_error(resp, 400, "InvalidRequest").startswith("Subscription validation request failed")
    assert notes("GET", "/subscriptions")["subscriptions"] == []
    assert notes("GET", "/notifications")["stats"]["validation_failures"] == 1


def test_a_slow_handshake_fails(graph_api, receiver: Receiver, notes: Control,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifications, "VALIDATION_TIMEOUT", 0.3)  # Graph allows 10 s
    receiver.echo = "slow"
    resp = graph_api("POST", "/subscriptions", {"changeType": "updated", "notificationUrl": receiver.url + "/n",
                                                "resource": "users", "expirationDateTime": expiry(60)})
    assert graph_error(resp, 400, "InvalidRequest").startswith("Subscription validation request failed")


def test_https_subscriber_checked_against_the_configured_ca(graph_api, notes: Control, emu, tmp_path) -> None:
    tls = Receiver(ssl_context(tmp_path))  # a server certificate for 127.0.0.1 from a CA of its own
    try:
        notes("POST", "/notifications/settings", {"verify": True})  # the system's CAs do not know it
        body = {"changeType": "updated", "notificationUrl": tls.url + "/notify", "resource": "users",
                "expirationDateTime": expiry(60), "clientState": "tls"}
        graph_error(graph_api("POST", "/subscriptions", body), 400, "InvalidRequest")
        notes("POST", "/notifications/settings", {"verify": str(tmp_path / "ca.pem")})
        assert graph_api("POST", "/subscriptions", body).status_code == 201
        user = new_user(notes, "notify.tls")
        settle(notes)
        assert [i["resource"] for i in tls.items("/notify")] == [f"Users/{user['id']}"]
    finally:
        notes("POST", "/notifications/settings", {"verify": False})
        tls.stop()


def test_request_checks(graph_api, receiver: Receiver, notes: Control, emu) -> None:
    base = {"changeType": "updated", "notificationUrl": receiver.url + "/n", "resource": "users",
            "expirationDateTime": expiry(60)}
    message = graph_error(graph_api("POST", "/subscriptions", {**base, "expirationDateTime": expiry(MAX_MINUTES + 2)}),
                          400, "ExtensionError")
    assert message == f"Subscription expiration can only be {MAX_MINUTES} minutes in the future."
    graph_error(graph_api("POST", "/subscriptions", {**base, "expirationDateTime": expiry(-1)}), 400, "ExtensionError")
    graph_error(graph_api("POST", "/subscriptions", {**base, "notificationUrl": "http://gateway.example/n"}),
                400, "InvalidRequest")
    graph_error(graph_api("POST", "/subscriptions", {**base, "changeType": "renamed"}), 400, "InvalidRequest")
    graph_error(graph_api("POST", "/subscriptions", {**base, "resource": "me/messages"}), 400, "InvalidRequest")
    graph_error(graph_api("POST", "/subscriptions", {**base, "clientState": "x" * 129}), 400, "InvalidRequest")
    assert receiver.validations == []  # refused before any handshake
    sub = subscribe(graph_api, receiver)
    too_far = graph_api("PATCH", f"/subscriptions/{sub['id']}", {"expirationDateTime": expiry(MAX_MINUTES + 2)})
    graph_error(too_far, 400, "ExtensionError")
    graph_error(graph_api("PATCH", f"/subscriptions/{sub['id']}",
                          {"lifecycleNotificationUrl": receiver.url + "/l"}), 400, "InvalidRequest")
    # Quota: 100 live subscriptions per app and tenant (counted in the store, as if created before).
    store = emu.app.extensions["emulator.store"]
    with store.transaction() as conn:
        conn.executemany("INSERT INTO subscriptions (id, tenant_id, resource, change_type, notification_url, "
                         "expiration, application_id, created, since_seq) VALUES (?, ?, 'users', 'updated', ?, ?, "
                         "?, 0, 0)", [(f"quota-{i}", emu.tenant_id, receiver.url, time.time() + 3600,
                                       emu.config["client_id"]) for i in range(99)])
    store.release()
    graph_error(graph_api("POST", "/subscriptions", base), 403, "ExtensionError")
    # Permissions: a token without User.Read.All (or Directory.Read.All) may not subscribe to users.
    weak = Graph(emu.app).token(upn=None, roles=["Group.Read.All"], appid=emu.config["client_id"])
    resp = https_session(emu.ca_path).post(f"{emu.base_url}/v1.0/subscriptions", json=base,
                                           headers={"Authorization": f"Bearer {weak}"})
    graph_error(resp, 403, "Authorization_RequestDenied")


# ---------------------------------------------------------------------------------------------- notifications


def test_user_update_and_disable_are_notified_in_microsofts_shape(graph_api, receiver: Receiver, notes: Control,
                                                                  emu) -> None:
    user = new_user(notes, "notify.update")
    sub = subscribe(graph_api, receiver)
    notes("PATCH", f"/users/{user['id']}", {"jobTitle": "Pilot"})
    notes("PATCH", f"/users/{user['id']}", {"accountEnabled": False})
    settle(notes)
    items = receiver.items("/notify")
    assert len(items) == 2
    item = items[0]
    assert set(item) == {"subscriptionId", "subscriptionExpirationDateTime", "changeType", "resource",
                         "resourceData", "clientState", "tenantId"}
    assert item["subscriptionId"] == sub["id"] and item["changeType"] == "updated"
    assert item["clientState"] == "s3cret-state" and item["tenantId"] == emu.tenant_id
    assert item["resource"] == f"Users/{user['id']}"
    assert item["resourceData"] == {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{user['id']}",
                                    "id": user["id"], "organizationId": emu.tenant_id}
    assert datetime.fromisoformat(item["subscriptionExpirationDateTime"]).timestamp() == pytest.approx(
        datetime.fromisoformat(sub["expirationDateTime"]).timestamp(), abs=1e-3)
    assert receiver.posts[0]["content_type"].startswith("application/json")
    stats = notes("GET", "/notifications")["stats"]
    assert stats["change_notifications_delivered"] == 2


def test_group_membership_changes_notify_the_group(graph_api, receiver: Receiver, notes: Control) -> None:
    user = new_user(notes, "notify.member")
    group = notes("POST", "/groups", {"displayName": "Notify group", "mailNickname": "notifygroup",
                                      "mailEnabled": False, "securityEnabled": True}, expect=201)
    subscribe(graph_api, receiver, "groups")
    subscribe(graph_api, receiver, f"/groups/{group['id']}", path="/one")
    notes("POST", f"/groups/{group['id']}/members", {"id": user["id"]}, expect=201)
    notes("DELETE", f"/groups/{group['id']}/members/{user['id']}")
    notes("PATCH", f"/users/{user['id']}", {"jobTitle": "Not a group change"})
    settle(notes)
    for path in ("/notify", "/one"):
        items = receiver.items(path)
        assert [(i["resource"], i["changeType"]) for i in items] == [(f"Groups/{group['id']}", "updated")] * 2
        assert items[0]["resourceData"]["@odata.type"] == "#Microsoft.Graph.Group"


def test_created_and_deleted_follow_graphs_change_types(graph_api, receiver: Receiver, notes: Control) -> None:
    """Graph reports a created or soft-deleted user as `updated` and only a permanent delete as `deleted`."""
    only_created = subscribe(graph_api, receiver, change="created", path="/created")
    subscribe(graph_api, receiver, change="updated,deleted")
    user = new_user(notes, "notify.lifecycle")
    notes("DELETE", f"/users/{user['id']}")
    settle(notes)
    assert [i["changeType"] for i in receiver.items("/notify")] == ["updated", "updated"]
    assert receiver.items("/created") == [] and only_created["changeType"] == "created"


def test_changes_made_together_arrive_in_one_post(graph_api, receiver: Receiver, notes: Control, emu) -> None:
    users = [new_user(notes, f"notify.batch{i}") for i in range(3)]
    group_sub = subscribe(graph_api, receiver, "groups")
    user_sub = subscribe(graph_api, receiver, "users")
    group = notes("POST", "/groups", {"displayName": "Batch group", "mailNickname": "batchgroup",
                                      "mailEnabled": False, "securityEnabled": True}, expect=201)
    settle(notes)
    receiver.posts.clear()
    store = emu.app.extensions["emulator.store"]
    from emulator import directory  # noqa: PLC0415 - the test writes through the directory in one transaction

    with store.transaction() as conn:
        for user in users:
            directory.update_user(conn, emu.tenant_id, user["id"], {"department": "Batch"})
        directory.add_member(conn, emu.tenant_id, group["id"], users[0]["id"])
    store.release()
    settle(notes)
    assert len(receiver.posts) == 1
    subs = [i["subscriptionId"] for i in receiver.posts[0]["body"]["value"]]
    assert sorted(subs) == sorted([user_sub["id"]] * 3 + [group_sub["id"]])
    notes("POST", "/notifications/settings", {"batch_size": 2})
    receiver.posts.clear()
    with store.transaction() as conn:
        for user in users:
            directory.update_user(conn, emu.tenant_id, user["id"], {"department": "Split"})
    store.release()
    settle(notes)
    assert sorted(len(p["body"]["value"]) for p in receiver.posts) == [1, 2]


def test_failed_deliveries_are_retried_then_dropped(graph_api, receiver: Receiver, notes: Control) -> None:
    user = new_user(notes, "notify.retry")
    subscribe(graph_api, receiver)
    receiver.fail_next = 2
    notes("PATCH", f"/users/{user['id']}", {"jobTitle": "Retried"})
    for _ in range(100):
        if receiver.items("/notify"):
            break
        time.sleep(0.05)
    assert len(receiver.items("/notify")) == 1
    assert [p["failed"] for p in receiver.posts] == [True, True, False]
    report = notes("GET", "/notifications")
    assert report["stats"]["failed_attempts"] == 2
    assert [d["attempt"] for d in report["deliveries"] if d["kind"] == "change"] == [1, 2, 3]
    notes("POST", "/notifications/settings", {"retry_window": 0.3})
    receiver.fail_next = 1000
    notes("PATCH", f"/users/{user['id']}", {"jobTitle": "Dropped"})
    for _ in range(100):
        if notes("GET", "/notifications")["stats"].get("change_notifications_dropped"):
            break
        time.sleep(0.05)
    assert notes("GET", "/notifications")["stats"]["change_notifications_dropped"] == 1


def test_expired_subscriptions_stop_delivering(graph_api, receiver: Receiver, notes: Control) -> None:
    user = new_user(notes, "notify.expired")
    sub = subscribe(graph_api, receiver)
    notes("POST", "/clock", {"shift": MAX_MINUTES * 60})
    assert notes("GET", "/subscriptions")["subscriptions"][0]["expired"] is True
    notes("PATCH", f"/users/{user['id']}", {"jobTitle": "Too late"})
    settle(notes)
    notes("POST", "/clock", {"reset": True})
    assert receiver.items() == []
    assert notes("GET", "/subscriptions")["subscriptions"] == []  # Graph removed it
    graph_error(graph_api("GET", f"/subscriptions/{sub['id']}"), 404, "ResourceNotFound")
    other = subscribe(graph_api, receiver)
    notes("POST", f"/subscriptions/{other['id']}/expire")
    notes("PATCH", f"/users/{user['id']}", {"jobTitle": "Also too late"})
    settle(notes)
    assert receiver.items() == []


# ---------------------------------------------------------------------------------------------- lifecycle


def test_lifecycle_notifications_on_demand(graph_api, receiver: Receiver, notes: Control, emu) -> None:
    user = new_user(notes, "notify.reauth")
    sub = subscribe(graph_api, receiver, lifecycle=True)
    notes("POST", f"/subscriptions/{sub['id']}/lifecycle", {"event": "reauthorizationRequired", "pause": True})
    notes("PATCH", f"/users/{user['id']}", {"jobTitle": "Lost while paused"})
    settle(notes)
    [event] = receiver.items("/lifecycle")
    assert event == {"subscriptionId": sub["id"], "subscriptionExpirationDateTime": event[
        "subscriptionExpirationDateTime"], "tenantId": emu.tenant_id, "clientState": "s3cret-state",
        "lifecycleEvent": "reauthorizationRequired"}
    assert receiver.items("/notify") == []
    assert graph_api("POST", f"/subscriptions/{sub['id']}/reauthorize").status_code == 204
    notes("PATCH", f"/users/{user['id']}", {"jobTitle": "Delivered again"})
    notes("POST", f"/subscriptions/{sub['id']}/lifecycle", {"event": "missed"})
    notes("POST", f"/subscriptions/{sub['id']}/lifecycle", {"event": "subscriptionRemoved"})
    settle(notes)
    assert len(receiver.items("/notify")) == 1
    assert [e["lifecycleEvent"] for e in receiver.items("/lifecycle")] == [
        "reauthorizationRequired", "missed", "subscriptionRemoved"]
    graph_error(graph_api("GET", f"/subscriptions/{sub['id']}"), 404, "ResourceNotFound")
    plain = subscribe(graph_api, receiver)
    notes("POST", f"/subscriptions/{plain['id']}/lifecycle", {"event": "missed"}, expect=409)


def test_withdrawn_consent_challenges_the_apps_subscriptions(emu, receiver: Receiver, notes: Control) -> None:
    client = notes("POST", "/clients", {"name": "Watcher", "application_permissions": ["User.Read.All"]},
                   expect=201)
    http = https_session(emu.ca_path)
    token = http.post(f"{emu.base_url}/{emu.tenant_id}/oauth2/v2.0/token",
                      data={"client_id": client["client_id"], "client_secret": client["client_secret"],
                            "grant_type": "client_credentials", "scope": f"{GRAPH}.default"}).json()["access_token"]
    resp = http.post(f"{emu.base_url}/v1.0/subscriptions", headers={"Authorization": f"Bearer {token}"},
                     json={"changeType": "updated", "notificationUrl": receiver.url + "/notify", "resource": "users",
                           "lifecycleNotificationUrl": receiver.url + "/lifecycle",
                           "expirationDateTime": expiry(60), "clientState": "w"})
    assert resp.status_code == 201, resp.text
    result = notes("POST", "/grants/revoke", {"client_id": client["client_id"]})
    assert result["subscriptions_challenged"] == [resp.json()["id"]]
    user = new_user(notes, "notify.consent")
    notes("PATCH", f"/users/{user['id']}", {"jobTitle": "Not heard"})
    settle(notes)
    assert [e["lifecycleEvent"] for e in receiver.items("/lifecycle")] == ["reauthorizationRequired"]
    assert receiver.items("/notify") == []
    assert notes("GET", "/subscriptions")["subscriptions"][0]["paused"] is True


def test_a_burst_is_read_in_several_scans(graph_api, receiver: Receiver, notes: Control, emu,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator import directory, notifications  # noqa: PLC0415 - the test writes through the directory

    users = [new_user(notes, f"notify.burst{i}") for i in range(5)]
    subscribe(graph_api, receiver)
    monkeypatch.setattr(notifications, "SCAN_ROWS", 2)
    store = emu.app.extensions["emulator.store"]
    with store.transaction() as conn:
        for user in users:
            directory.update_user(conn, emu.tenant_id, user["id"], {"department": "Burst"})
    store.release()
    settle(notes)
    assert sorted(i["resource"] for i in receiver.items("/notify")) == sorted(f"Users/{u['id']}" for u in users)
    assert sorted(len(p["body"]["value"]) for p in receiver.posts) == [1, 2, 2]


# ---------------------------------------------------------------------------------------------- sessions


def signed_in(emu: EmulatorHandle, upn: str) -> tuple[Browser, str]:
    browser = Browser(emu)
    code = browser.code(upn, scope=f"{GRAPH}User.Read openid profile offline_access")["code"]
    return browser, browser.redeem(code).json()["refresh_token"]


def test_revoke_sign_in_sessions_refuses_earlier_refresh_tokens(emu, receiver: Receiver, notes: Control,
                                                                 graph_api) -> None:
    user = new_user(notes, "notify.revoke")
    browser, rt = signed_in(emu, user["userPrincipalName"])
    subscribe(graph_api, receiver)
    graph = Graph(emu.app)
    before = graph.get(f"/users/{user['id']}?$select=id,signInSessionsValidFromDateTime").get_json()
    resp = graph.post(f"/users/{user['id']}/revokeSignInSessions")
    assert resp.status_code == 200 and resp.get_json()["value"] is True
    assert resp.get_json()["@odata.context"].endswith("$metadata#Edm.Boolean")
    after = graph.get(f"/users/{user['id']}?$select=id,signInSessionsValidFromDateTime").get_json()
    assert after["signInSessionsValidFromDateTime"] >= before["signInSessionsValidFromDateTime"]
    assert "signInSessionsValidFromDateTime" not in graph.get(f"/users/{user['id']}").get_json()
    delta = graph.get(f"/users/delta?$select=id,signInSessionsValidFromDateTime&$filter=id eq '{user['id']}'")
    assert delta.get_json()["value"][0]["signInSessionsValidFromDateTime"] == after["signInSessionsValidFromDateTime"]
    refused = browser.token(grant_type="refresh_token", refresh_token=rt)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert refused.json()["error_codes"] == [50173] and refused.json()["suberror"] == "bad_token"
    settle(notes)
    assert [i["resource"] for i in receiver.items("/notify")] == [f"Users/{user['id']}"]
    _, fresh = signed_in(emu, user["userPrincipalName"])  # signing in again works
    assert browser.token(grant_type="refresh_token", refresh_token=fresh).status_code == 200


def test_password_reset_and_disable_refuse_refresh_tokens(emu, notes: Control) -> None:
    user = new_user(notes, "notify.disable")
    browser, rt = signed_in(emu, user["userPrincipalName"])
    notes("PATCH", f"/users/{user['id']}", {"accountEnabled": False})
    refused = browser.token(grant_type="refresh_token", refresh_token=rt)
    assert refused.status_code == 400 and refused.json()["error_codes"] == [50057]
    notes("PATCH", f"/users/{user['id']}", {"accountEnabled": True})
    assert browser.token(grant_type="refresh_token", refresh_token=rt).status_code == 200
    notes("PATCH", f"/users/{user['id']}", {"passwordProfile": {"password": "new-demo"}})
    assert browser.token(grant_type="refresh_token", refresh_token=rt).json()["error_codes"] == [50173]
