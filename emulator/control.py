"""Control API (`/_emulator/`, key-protected), fault injection and per-endpoint request counters.

Faults and counters live in memory (per app); everything else the API changes lives in the store.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from emulator import clock, directory, notifications, throttling
from emulator.clients import (
    add_app_role,
    app_roles,
    assign_app_role,
    client_json,
    find_app_role,
    unassign_app_role,
    upsert_client,
)
from emulator.config import config_dict
from emulator.graph.errors import graph_error
from emulator.identity.common import base_url
from emulator.identity.errors import AADSTS, token_error

bp = Blueprint("control", __name__, url_prefix="/_emulator")

SCOPES = ("graph", "token", "entra", "all")
KINDS = ("throttle", "error", "delay", "drop", "aadsts", "rate")
GRAPH_DEFAULTS = {
    429: ("TooManyRequests", "Too many requests. Please retry after the time given in the Retry-After header."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Please try again later."),
    504: ("GatewayTimeout", "The gateway did not receive a timely response from the upstream service."),
    500: ("generalException", "An unexpected error occurred."),
    401: ("InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
    403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
}


@dataclass
class Fault:
    """One injected fault. `every`: hit every Nth matching request; `seconds`: only for that long;
    `count`: stop after that many hits; `path`: substring the path must contain. `rate`: Microsoft's identity
    throttling (docs/microsoft.md §7): a token bucket of `limit` resource units per `window` seconds, each request
    costing what Microsoft's table says (`throttling.resource_units`); a request over the limit is answered 429
    with the seconds until the bucket has room in `Retry-After`, `x-ms-throttle-scope` and
    `x-ms-throttle-information`. A $batch is not charged; each of its requests is, on its own."""

    kind: str
    scope: str = "graph"
    status: int = 0
    code: str = ""
    message: str = ""
    retry_after: int | None = None
    every: int = 1
    seconds: float | None = None
    count: int | None = None
    path: str = ""
    method: str = ""
    delay_ms: int = 0
    aadsts: int = 0
    limit: int = 0
    window: float = 10.0
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    until: float | None = None
    seen: int = 0
    hits: int = 0
    spent: deque = field(default_factory=deque)  # rate: (monotonic time, resource units) within the window

    def matches(self, path: str, method: str) -> bool:
        if self.scope == "graph" and not path.startswith("/v1.0"):
            return False
        if self.scope == "token" and not path.endswith("/oauth2/v2.0/token"):
            return False
        if self.scope == "entra" and path.startswith("/v1.0"):
            return False
        if self.path and self.path not in path:
            return False
        return not (self.method and self.method.upper() != method)

    def expired(self) -> bool:
        return (self.until is not None and time.monotonic() >= self.until) or (
            self.count is not None and self.hits >= self.count)

    def public(self) -> dict:
        data = asdict(self)
        data.pop("until")
        data.pop("spent")
        data["active"] = not self.expired()
        return data


class ControlState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.id_token_claims: dict[str, Any] = {}  # claims changed in every ID token issued (None: removed)

    def add(self, fault: Fault) -> Fault:
        if fault.seconds:
            fault.until = time.monotonic() + float(fault.seconds)
        with self.lock:
            self.faults.append(fault)
        return fault

    def pick(self, path: str, method: str) -> Fault | None:
        """The fault that fires for this request, if any (updates the fault's counters)."""
        with self.lock:
            self.faults = [f for f in self.faults if not f.expired()]
            for fault in self.faults:
                if not fault.matches(path, method):
                    continue
                if fault.kind == "rate":
                    wait = throttling.charge(fault, path, method, request.args)
                    if wait is None:
                        continue
                    fault.hits += 1
                    request.environ["emulator.retry_after"] = wait
                    return fault
                fault.seen += 1
                if fault.seen % max(1, fault.every) == 0:
                    fault.hits += 1
                    return fault
        return None


def state() -> ControlState:
    return current_app.extensions["emulator.control"]


def _fire(fault: Fault) -> Response | None:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    entra = not request.path.startswith("/v1.0")
    if fault.kind == "delay":
        time.sleep(fault.delay_ms / 1000)
        return None
    if fault.kind == "drop":
        request.environ["emulator.drop"] = True
        return Response(b"", 500)
    if fault.kind == "aadsts":
        return token_error(fault.aadsts)
    if fault.kind == "rate":
        return throttling.throttled(request.environ["emulator.retry_after"])
    status = fault.status or (429 if fault.kind == "throttle" else 503)
    if fault.kind == "throttle" and "Retry-After" not in headers:
        headers["Retry-After"] = "1"
    if entra:
        response = token_error(90033 if status != 429 else 50196, status=status)
        response.headers.update(headers)
        return response
    code, message = GRAPH_DEFAULTS.get(status, ("UnknownError", "An error occurred."))
    return graph_error(status, fault.code or code, fault.message or message, headers=headers)


def before_request() -> Response | None:
    """Count the request and fire an injected fault when one matches (never for the control API)."""
    path = request.path
    if path.startswith("/_emulator/") or path.startswith("/emulator-static/"):
        return None
    st: ControlState = current_app.extensions["emulator.control"]
    rule = request.url_rule.rule if request.url_rule is not None else path
    key = f"{request.method} {rule}"
    with st.lock:
        st.counters[key] += 1
    if not st.faults:
        return None
    fault = st.pick(path, request.method)
    return _fire(fault) if fault is not None else None


def init_app(app: Flask) -> None:
    app.extensions["emulator.control"] = ControlState()
    app.before_request(before_request)
    app.after_request(throttling.resource_unit_header)
    app.register_blueprint(bp)
    inner = app.wsgi_app

    def wsgi(environ: dict, start_response: Any) -> Any:
        result = inner(environ, start_response)
        if environ.get("emulator.drop"):
            if hasattr(result, "close"):
                result.close()
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            raise ConnectionResetError("connection dropped by the emulator's fault injection")
        return result

    app.wsgi_app = wsgi  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------- API


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


@bp.before_request
def _check_key() -> Response | None:
    key = current_app.extensions["emulator.settings"].control_key
    auth = request.headers.get("Authorization", "")
    if not (key and auth.startswith("Bearer ") and secrets.compare_digest(auth[7:].strip(), key)):
        response = _error(401, "missing or wrong control key (Authorization: Bearer <control_key>)")
        response.headers["WWW-Authenticate"] = 'Bearer realm="emulator-control"'
        return response
    return None


def _body() -> dict:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _store() -> Any:
    return current_app.extensions["emulator.store"]


def _settings() -> Any:
    return current_app.extensions["emulator.settings"]


def _tenant_id(value: str | None) -> str | None:
    conn = _store().conn()
    if not value:
        row = conn.execute("SELECT id FROM tenants ORDER BY rowid LIMIT 1").fetchone()
    else:
        row = conn.execute("SELECT id FROM tenants WHERE id = ? OR domain = ?",
                           (value.lower(), value.lower())).fetchone()
    return row[0] if row else None


def _user(value: str) -> Any:
    return _store().conn().execute("SELECT * FROM users WHERE id = ? OR lower(user_principal_name) = ?",
                                   (value, value.lower())).fetchone()


@bp.get("/status")
def status() -> Response:
    settings = _settings()
    return jsonify({"ok": True, "now": clock.now(), "clock_offset": settings.clock_offset,
                    "delta_epoch": settings.delta_epoch, "active_kid": current_app.extensions["emulator.keys"]
                    .active_kid, "faults": len(state().faults)})


@bp.get("/config")
def config() -> Response:
    return jsonify(config_dict(current_app, base_url()))


# -- faults


@bp.get("/faults")
def list_faults() -> Response:
    with state().lock:
        return jsonify({"faults": [f.public() for f in state().faults]})


@bp.post("/faults")
def add_fault() -> Response:
    data = _body()
    kind = data.get("kind", "")
    if kind not in KINDS:
        return _error(400, f"kind must be one of {', '.join(KINDS)}")
    if data.get("scope", "graph") not in SCOPES:
        return _error(400, f"scope must be one of {', '.join(SCOPES)}")
    allowed = set(Fault.__dataclass_fields__) - {"id", "until", "seen", "hits", "spent"}
    unknown = set(data) - allowed
    if unknown:
        return _error(400, f"unknown fields: {', '.join(sorted(unknown))}")
    if kind == "aadsts":
        if int(data.get("aadsts", 0)) not in AADSTS:
            return _error(400, f"aadsts must be one of {sorted(AADSTS)}")
        data.setdefault("scope", "token")
    if kind == "rate" and (not isinstance(data.get("limit"), int) or data["limit"] < 1
                           or not isinstance(data.get("window", 10.0), int | float) or data.get("window", 10.0) <= 0):
        return _error(400, "a rate fault needs limit (resource units, >= 1) and window (seconds, > 0)")
    try:
        fault = state().add(Fault(**data))
    except (TypeError, ValueError) as exc:
        return _error(400, str(exc))
    response = jsonify(fault.public())
    response.status_code = 201
    return response


@bp.delete("/faults")
def clear_faults() -> Response:
    with state().lock:
        removed = len(state().faults)
        state().faults.clear()
    return jsonify({"removed": removed})


@bp.delete("/faults/<fault_id>")
def delete_fault(fault_id: str) -> Response:
    with state().lock:
        before = len(state().faults)
        state().faults = [f for f in state().faults if f.id != fault_id]
        removed = before - len(state().faults)
    return jsonify({"removed": removed}) if removed else _error(404, "no such fault")


# -- counters


@bp.get("/counters")
def counters() -> Response:
    with state().lock:
        data = dict(state().counters)
        if request.args.get("reset") in ("1", "true"):
            state().counters.clear()
    return jsonify({"counters": data, "total": sum(data.values()),
                    "graph": sum(v for k, v in data.items() if k.split(" ", 1)[1].startswith("/v1.0"))})


@bp.delete("/counters")
def reset_counters() -> Response:
    with state().lock:
        state().counters.clear()
    return jsonify({"counters": {}})


# -- tokens, grants, delta, clock, keys


@bp.post("/revoke")
def revoke_user() -> Response:
    """What Graph's revokeSignInSessions does: signInSessionsValidFromDateTime = now, every refresh token and
    browser session of the user ends (AADSTS50173 on refresh), and subscribers hear of the user's change."""
    user = _user(str(_body().get("user", "")))
    if user is None:
        return _error(404, "no such user")
    with _store().transaction() as conn:
        result = directory.revoke_sign_in_sessions(conn, user["tenant_id"], user["id"])
    return jsonify(result)


@bp.get("/grants")
def list_grants() -> Response:
    rows = _store().conn().execute("SELECT * FROM grants ORDER BY created").fetchall()
    return jsonify({"grants": [dict(r, scopes=json.loads(r["scopes"])) for r in rows]})


@bp.post("/grants/revoke")
def revoke_grant() -> Response:
    """Withdraw consent: AADSTS65001 at refresh, consent asked again at authorize."""
    data = _body()
    client_id = data.get("client_id") or _store().get_setting("gateway_client_id")
    args: list[Any] = [client_id]
    where = "client_id = ?"
    user_id = None
    if data.get("user"):
        user = _user(str(data["user"]))
        if user is None:
            return _error(404, "no such user")
        user_id = user["id"]
        where += " AND principal IN (?, '*') AND tenant_id = ?"
        args += [user_id, user["tenant_id"]]
    elif data.get("tenant"):
        where += " AND tenant_id = ?"
        args.append(_tenant_id(data["tenant"]))
    with _store().transaction() as conn:
        removed = conn.execute(f"DELETE FROM grants WHERE {where}", args).rowcount  # noqa: S608 - fixed SQL
        rt_sql = "UPDATE refresh_tokens SET revoked = 2 WHERE client_id = ? AND revoked = 0"
        rt_args: list[Any] = [client_id]
        if user_id:
            rt_sql += " AND user_id = ?"
            rt_args.append(user_id)
        tokens = conn.execute(rt_sql, rt_args).rowcount
        sub_sql = "SELECT * FROM subscriptions WHERE application_id = ?"
        sub_args: list[Any] = [client_id]
        if user_id:
            sub_sql += " AND creator_id = ?"
            sub_args.append(user_id)
        elif data.get("tenant"):
            sub_sql += " AND tenant_id = ?"
            sub_args.append(_tenant_id(data["tenant"]))
        subs = conn.execute(sub_sql, sub_args).fetchall()  # noqa: S608 - fixed SQL
        conn.executemany("UPDATE subscriptions SET reauth_required = 1, paused = 1 WHERE id = ?",
                         [(s["id"],) for s in subs])
    # Graph challenges the app's subscriptions once it may no longer read what they watch; delivery pauses.
    challenged = [s["id"] for s in subs if s["lifecycle_url"] and _notifier().lifecycle(s, "reauthorizationRequired")]
    return jsonify({"grants_removed": removed, "refresh_tokens": tokens, "subscriptions_challenged": challenged})


@bp.post("/delta/expire")
def expire_delta() -> Response:
    settings = _settings()
    settings.set("delta_epoch", settings.delta_epoch + 1)
    return jsonify({"delta_epoch": settings.delta_epoch})


@bp.get("/clock")
def get_clock() -> Response:
    return jsonify({"now": clock.now(), "offset": _settings().clock_offset})


@bp.post("/clock")
def set_clock() -> Response:
    """{"shift": seconds} moves the clock forward (or back), {"offset": s} sets it, {"reset": true} clears it."""
    data = _body()
    settings = _settings()
    if data.get("reset"):
        offset = 0.0
    elif "offset" in data:
        offset = float(data["offset"])
    elif "shift" in data:
        offset = settings.clock_offset + float(data["shift"])
    else:
        return _error(400, "give shift, offset or reset")
    settings.set("clock_offset", offset)
    return jsonify({"now": clock.now(), "offset": settings.clock_offset})


@bp.get("/id-token-claims")
def get_id_token_claims() -> Response:
    return jsonify({"claims": state().id_token_claims})


@bp.post("/id-token-claims")
def set_id_token_claims() -> Response:
    """Tampering for relying-party tests: every ID token issued from now on carries these claims (a value of null
    removes the claim), e.g. {"aud": [client id, another app]} as a misconfigured or hostile provider could send."""
    claims = _body().get("claims")
    if not isinstance(claims, dict):
        return _error(400, 'give {"claims": {...}}')
    with state().lock:
        state().id_token_claims = dict(claims)
    return jsonify({"claims": state().id_token_claims})


@bp.delete("/id-token-claims")
def clear_id_token_claims() -> Response:
    with state().lock:
        state().id_token_claims = {}
    return jsonify({"claims": {}})


@bp.post("/keys/rotate")
def rotate_keys() -> Response:
    result = current_app.extensions["emulator.keys"].rotate()
    _settings().refresh()
    return jsonify(result)


# -- directory (delegates to emulator.directory, shared with the Graph routes)


def _directory_call(name: str, *args: Any) -> Response:
    try:
        with _store().transaction() as conn:
            result = getattr(directory, name)(conn, *args)
    except directory.DirectoryError as exc:
        response = jsonify({"error": {"code": exc.code, "message": exc.message}})
        response.status_code = exc.status
        return response
    response = jsonify(result if result is not None else {})
    response.status_code = 201 if name.startswith(("create", "add")) else 200
    return response


def _object_tenant(table: str, object_id: str) -> str | None:
    row = _store().conn().execute(f"SELECT tenant_id FROM {table} WHERE id = ?",  # noqa: S608 - fixed names
                                  (object_id,)).fetchone()
    return row[0] if row else None


@bp.post("/users")
def create_user() -> Response:
    data = _body()
    tenant = _tenant_id(data.pop("tenant", None))
    if tenant is None:
        return _error(404, "no such tenant")
    return _directory_call("create_user", tenant, data)


@bp.route("/users/<user_id>", methods=["PATCH", "DELETE"])
def change_user(user_id: str) -> Response:
    user = _user(user_id)
    if user is None:
        return _error(404, "no such user")
    if request.method == "DELETE":
        return _directory_call("delete_user", user["tenant_id"], user["id"])
    return _directory_call("update_user", user["tenant_id"], user["id"], _body())


@bp.post("/groups")
def create_group() -> Response:
    data = _body()
    tenant = _tenant_id(data.pop("tenant", None))
    if tenant is None:
        return _error(404, "no such tenant")
    return _directory_call("create_group", tenant, data)


@bp.route("/groups/<group_id>", methods=["PATCH", "DELETE"])
def change_group(group_id: str) -> Response:
    tenant = _object_tenant("groups", group_id)
    if tenant is None:
        return _error(404, "no such group")
    if request.method == "DELETE":
        return _directory_call("delete_group", tenant, group_id)
    return _directory_call("update_group", tenant, group_id, _body())


@bp.post("/groups/<group_id>/members")
def add_member(group_id: str) -> Response:
    tenant = _object_tenant("groups", group_id)
    if tenant is None:
        return _error(404, "no such group")
    member = _user(str(_body().get("id", "")))
    member_id = member["id"] if member is not None else str(_body().get("id", ""))
    return _directory_call("add_member", tenant, group_id, member_id)


@bp.delete("/groups/<group_id>/members/<member_id>")
def remove_member(group_id: str, member_id: str) -> Response:
    tenant = _object_tenant("groups", group_id)
    if tenant is None:
        return _error(404, "no such group")
    member = _user(member_id)
    return _directory_call("remove_member", tenant, group_id, member["id"] if member is not None else member_id)


# -- clients


@bp.get("/clients")
def list_clients() -> Response:
    conn = _store().conn()
    ids = [r[0] for r in conn.execute("SELECT client_id FROM clients ORDER BY rowid")]
    return jsonify({"clients": [client_json(conn, i) for i in ids]})


CLIENT_FIELDS = {"client_id", "client_secret", "secret", "name", "redirect_uris", "front_channel_logout_url",
                 "group_membership_claims", "delegated_permissions", "application_permissions"}


def _save_client(client_id: str, data: dict) -> Response:
    unknown = set(data) - CLIENT_FIELDS
    if unknown:
        return _error(400, f"unknown fields: {', '.join(sorted(unknown))}")
    redirect_uris = data.get("redirect_uris")
    if redirect_uris is not None and not (isinstance(redirect_uris, list)
                                          and all(isinstance(u, str) for u in redirect_uris)):
        return _error(400, "redirect_uris must be a list of strings")
    with _store().transaction() as conn:
        existed = conn.execute("SELECT 1 FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        result = upsert_client(conn, client_id, secret=data.get("client_secret") or data.get("secret"),
                               name=data.get("name"), redirect_uris=redirect_uris,
                               front_channel_logout_url=data.get("front_channel_logout_url"),
                               group_membership_claims=data.get("group_membership_claims"),
                               delegated=data.get("delegated_permissions"),
                               application=data.get("application_permissions"))
    response = jsonify(result)
    response.status_code = 200 if existed else 201
    return response


@bp.post("/clients")
def register_client() -> Response:
    data = _body()
    return _save_client(str(data.get("client_id") or uuid.uuid4()), data)


@bp.patch("/clients/<client_id>")
def update_client(client_id: str) -> Response:
    if not _store().conn().execute("SELECT 1 FROM clients WHERE client_id = ?", (client_id,)).fetchone():
        return _error(404, "no such client")
    return _save_client(client_id, _body())


# -- app roles of a client (appRoles) and their assignments to users and groups (appRoleAssignedTo)


def _client_exists(client_id: str) -> bool:
    return _store().conn().execute("SELECT 1 FROM clients WHERE client_id = ?", (client_id,)).fetchone() is not None


@bp.get("/clients/<client_id>/app-roles")
def list_app_roles(client_id: str) -> Response:
    if not _client_exists(client_id):
        return _error(404, "no such client")
    return jsonify({"appRoles": app_roles(_store().conn(), client_id)})


@bp.post("/clients/<client_id>/app-roles")
def create_app_role(client_id: str) -> Response:
    """`{"value": "Reader", "displayName"?, "description"?, "allowedMemberTypes"?, "id"?}`"""
    data = _body()
    value = data.get("value")
    if not _client_exists(client_id):
        return _error(404, "no such client")
    if not isinstance(value, str) or not value.strip() or " " in value:
        return _error(400, "value must be a non-empty string without spaces")
    with _store().transaction() as conn:
        role = add_app_role(conn, client_id, value, data.get("displayName"), str(data.get("description") or ""),
                            data.get("allowedMemberTypes"), data.get("id"))
    response = jsonify(role)
    response.status_code = 201
    return response


def _role_and_principal(client_id: str) -> tuple[Any, str, str] | Response:
    data = _body()
    if not _client_exists(client_id):
        return _error(404, "no such client")
    conn = _store().conn()
    role = find_app_role(conn, client_id, str(data.get("appRole") or data.get("appRoleId") or ""))
    if role is None:
        return _error(404, "no such app role (appRole: its id or value)")
    principal = str(data.get("principal") or data.get("principalId") or "")
    user = _user(principal)
    if user is not None:
        return role, user["id"], "User"
    if _object_tenant("groups", principal) is not None:
        return role, principal, "Group"
    return _error(404, "no such user or group (principal: a user id or UPN, or a group id)")


@bp.post("/clients/<client_id>/app-role-assignments")
def create_app_role_assignment(client_id: str) -> Response:
    """`{"appRole": id or value, "principal": user id or UPN, or group id}`"""
    found = _role_and_principal(client_id)
    if isinstance(found, Response):
        return found
    role, principal_id, principal_type = found
    with _store().transaction() as conn:
        assignment = assign_app_role(conn, client_id, role["id"], principal_id, principal_type)
    response = jsonify(assignment)
    response.status_code = 201
    return response


@bp.delete("/clients/<client_id>/app-role-assignments")
def delete_app_role_assignment(client_id: str) -> Response:
    found = _role_and_principal(client_id)
    if isinstance(found, Response):
        return found
    role, principal_id, _type = found
    with _store().transaction() as conn:
        removed = unassign_app_role(conn, client_id, role["id"], principal_id)
    return jsonify({"removed": removed})


# -- change notifications (emulator.notifications; the Graph side is graph/subscriptions.py)


def _notifier() -> notifications.Notifier:
    return notifications.notifier(current_app)


@bp.get("/subscriptions")
def list_subscriptions() -> Response:
    now = clock.now()
    rows = _store().conn().execute("SELECT * FROM subscriptions ORDER BY created").fetchall()
    return jsonify({"subscriptions": [notifications.control_json(r, now) for r in rows]})


@bp.delete("/subscriptions")
def clear_subscriptions() -> Response:
    """Remove every subscription silently (no lifecycle notification): a clean slate between tests."""
    with _store().transaction() as conn:
        removed = conn.execute("DELETE FROM subscriptions").rowcount
    return jsonify({"removed": removed})


def _subscription(sub_id: str) -> Any:
    return _store().conn().execute("SELECT * FROM subscriptions WHERE id = ?", (sub_id,)).fetchone()


@bp.post("/subscriptions/<sub_id>/lifecycle")
def send_lifecycle(sub_id: str) -> Response:
    """Post a lifecycle notification to the subscription's lifecycleNotificationUrl, as Graph would:
    `reauthorizationRequired` (with {"pause": true} change notifications stop, and changes meanwhile are lost,
    until POST /subscriptions/{id}/reauthorize or a renewal), `subscriptionRemoved` (the subscription is deleted),
    `missed` (some notifications were not delivered; with {"drop": true} the queued ones are discarded)."""
    data = _body()
    event = data.get("event")
    if event not in notifications.LIFECYCLE_EVENTS:
        return _error(400, f"event must be one of {', '.join(notifications.LIFECYCLE_EVENTS)}")
    sub = _subscription(sub_id)
    if sub is None:
        return _error(404, "no such subscription")
    if not sub["lifecycle_url"]:
        return _error(409, "the subscription has no lifecycleNotificationUrl: Graph sends it no lifecycle event")
    with _store().transaction() as conn:
        if event == "reauthorizationRequired":
            conn.execute("UPDATE subscriptions SET reauth_required = 1, paused = ? WHERE id = ?",
                         (int(bool(data.get("pause"))), sub_id))
        elif event == "subscriptionRemoved":
            conn.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))
    dropped = _notifier().discard(sub_id) if event == "missed" and data.get("drop") else 0
    queued = _notifier().lifecycle(sub, event)
    return jsonify({"subscription": sub_id, "event": event, "queued": queued, "discarded": dropped})


@bp.post("/subscriptions/<sub_id>/expire")
def expire_subscription(sub_id: str) -> Response:
    """Make the subscription expire now: it stops delivering and Graph's API no longer shows it."""
    with _store().transaction() as conn:
        changed = conn.execute("UPDATE subscriptions SET expiration = ? WHERE id = ?",
                               (clock.now(), sub_id)).rowcount
    return jsonify({"expired": sub_id}) if changed else _error(404, "no such subscription")


@bp.get("/notifications")
def notification_report() -> Response:
    """Counters (validations, queued/delivered/dropped notifications, failed attempts), the last 500 POSTs and
    validation requests, what is still queued, and the delivery settings."""
    return jsonify(_notifier().report())


@bp.delete("/notifications")
def reset_notifications() -> Response:
    _notifier().reset()
    return jsonify(_notifier().report())


@bp.post("/notifications/settings")
def notification_settings() -> Response:
    try:
        settings = _notifier().configure(_body())
    except ValueError as exc:
        return _error(400, str(exc))
    return jsonify({"settings": settings})


@bp.post("/notifications/wait")
def wait_notifications() -> Response:
    """Return once every directory change so far is turned into notifications and nothing is due or in flight
    (retries scheduled for later do not count), or after `timeout` seconds (default 10)."""
    timeout = _body().get("timeout", 10)
    if not isinstance(timeout, int | float) or timeout < 0 or timeout > 120:
        return _error(400, "timeout is 0-120 seconds")
    idle = _notifier().wait_idle(float(timeout))
    return jsonify({"idle": idle, **_notifier().report()})
