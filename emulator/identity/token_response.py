"""Token endpoint success for a delegated grant: access, refresh, ID token (docs/microsoft.md §1.6, §1.7)."""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
from typing import Any

from flask import Response, current_app, request

from emulator import clock, tokens
from emulator.clients import user_app_roles
from emulator.identity.common import NO_STORE, base_url, db, json_response, store
from emulator.tokens import GRAPH_RESOURCE, client_info


def _user_groups(user_id: str) -> list[str]:
    return [r[0] for r in db().execute(
        "SELECT group_id FROM memberships WHERE member_id = ? AND relation = 'member'", (user_id,))]


def issue_tokens(client: dict, user: sqlite3.Row, graph: list[str], oidc: list[str], *, nonce: str | None,
                 sid: str | None, auth_time: float, rt_graph: list[str] | None = None,
                 acrs: list[str] | None = None) -> Response:
    """The success response of docs/microsoft.md §1.6 for a delegated grant."""
    now = int(clock.now())
    base = base_url()
    tid, oid = user["tenant_id"], user["id"]
    lifetime = random.randint(3600, 5399)  # noqa: S311 - Entra picks 60-90 minutes at random
    scp = graph + [o for o in oidc if o in ("openid", "profile", "email")]
    access_token = tokens.user_access_token(base, client, user, scp, now=now, lifetime=lifetime, sid=sid,
                                            ipaddr=request.remote_addr or "127.0.0.1")
    scope_out = [f"{GRAPH_RESOURCE}/{s}" for s in graph] + [o for o in oidc if o != "offline_access"]
    if "offline_access" in oidc:
        scope_out.append("offline_access")
    body: dict[str, Any] = {"token_type": "Bearer", "scope": " ".join(scope_out), "expires_in": lifetime,
                            "ext_expires_in": lifetime, "access_token": access_token}
    if "offline_access" in oidc:
        rt = "1.AXkA" + secrets.token_urlsafe(96)
        with store().transaction() as conn:
            conn.execute("INSERT INTO refresh_tokens (token, tenant_id, client_id, user_id, scopes, sid, auth_time, "
                         "created, last_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (rt, tid, client["client_id"], oid,
                          json.dumps({"graph": rt_graph if rt_graph is not None else graph, "oidc": oidc}),
                          sid, auth_time, now, now))
        body["refresh_token"] = rt
    if "openid" in oidc:
        groups = _user_groups(oid) if client["group_membership_claims"] else None
        # The control API's ID-token tampering (emulator/control.py) is read from the app's extensions, so the
        # identity side does not import control (control imports identity's errors).
        tampering = current_app.extensions["emulator.control"].id_token_claims
        body["id_token"] = tokens.id_token(base, client, user, oidc, nonce=nonce, sid=sid, auth_time=auth_time,
                                           now=now, groups=groups, changes=dict(tampering), acrs=acrs,
                                           roles=user_app_roles(db(), client["client_id"], oid))
    if request.form.get("client_info") == "1":
        body["client_info"] = client_info(oid, tid)
    return json_response(body, headers=NO_STORE)
