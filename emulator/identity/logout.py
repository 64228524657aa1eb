"""Logout endpoint: end sessions, call front-channel logout URLs, redirect (docs/microsoft.md §1.8)."""

from __future__ import annotations

import base64
import json
import sqlite3
from urllib.parse import urlencode

import requests
from flask import Response, redirect, request

from emulator.identity.blueprint import bp
from emulator.identity.common import base_url, db, get_client, redirect_registered
from emulator.identity.errors import message_page
from emulator.identity.sessions import clear_session_cookie, current_session, end_sessions
from emulator.tokens import keyring


@bp.route("/<tenant>/oauth2/v2.0/logout", methods=["GET", "POST"])
def logout(tenant: str) -> Response:
    params = request.values
    sessions = _sessions_to_end()
    end_sessions([s["sid"] for s in sessions])
    front_channel_logout(sessions)
    target = params.get("post_logout_redirect_uri", "")
    response: Response
    if target and _logout_target_registered(target, params.get("client_id"), sessions):
        state = params.get("state")
        if state:
            target += ("&" if "?" in target else "?") + urlencode({"state": state})
        response = redirect(target, 302)
    else:
        response = message_page("You signed out of your account",
                                "It's a good idea to close all browser windows.", status=200)
    return clear_session_cookie(response)


def _sessions_to_end() -> list[sqlite3.Row]:
    """The browser's own session plus those named by id_token_hint (its sid) and logout_hint (its uid)."""
    sessions = []
    current = current_session()
    if current is not None:
        sessions.append(current)
    params = request.values
    hint = params.get("id_token_hint")
    if hint:
        claims = keyring().decode(hint) or {}
        if claims.get("sid"):
            row = db().execute("SELECT * FROM sessions WHERE sid = ? AND ended = 0", (claims["sid"],)).fetchone()
            if row is not None:
                sessions.append(row)
    logout_hint = params.get("logout_hint")
    if logout_hint:
        try:
            uid = json.loads(base64.urlsafe_b64decode(logout_hint + "=" * (-len(logout_hint) % 4)))["uid"]
        except (ValueError, KeyError, TypeError):
            uid = None
        if uid:
            sessions += db().execute("SELECT * FROM sessions WHERE user_id = ? AND ended = 0", (uid,)).fetchall()
    unique = {s["sid"]: s for s in sessions}
    return list(unique.values())


def front_channel_logout(sessions: list[sqlite3.Row]) -> list[str]:
    """GET each registered front-channel logout URL of the apps used in these sessions (sid + iss)."""
    called = []
    for session in sessions:
        for client_id in json.loads(session["clients"]):
            client = get_client(client_id)
            if not client or not client["front_channel_logout_url"]:
                continue
            url = client["front_channel_logout_url"]
            sep = "&" if "?" in url else "?"
            issuer = f"{base_url()}/{session['tenant_id']}/v2.0"
            full = url + sep + urlencode({"sid": session["sid"], "iss": issuer})
            try:
                with requests.Session() as http:
                    http.trust_env = False
                    http.get(full, timeout=3, verify=False)  # noqa: S501 - local apps with local certificates
                called.append(full)
            except requests.RequestException:
                called.append(full + " (failed)")
    return called


def _logout_target_registered(target: str, client_id: str | None, sessions: list[sqlite3.Row]) -> bool:
    client_ids = [client_id] if client_id else [c for s in sessions for c in json.loads(s["clients"])]
    if not client_ids:
        client_ids = [r[0] for r in db().execute("SELECT client_id FROM clients")]
    for cid in client_ids:
        client = get_client(cid)
        if client and (redirect_registered(client, target) or target == client["front_channel_logout_url"]):
            return True
    return False
