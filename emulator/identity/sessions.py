"""The browser session (cookie emu_session) that lets authorize skip sign-in (docs/microsoft.md §1.4, §1.8)."""

from __future__ import annotations

import sqlite3
import uuid

from flask import Response, request

from emulator import clock
from emulator.identity.common import db, store

SESSION_COOKIE = "emu_session"


def current_session() -> sqlite3.Row | None:
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None
    return db().execute("SELECT * FROM sessions WHERE sid = ? AND ended = 0", (sid,)).fetchone()


def new_session(user: sqlite3.Row) -> str:
    sid = str(uuid.uuid4())
    with store().transaction() as conn:
        conn.execute("INSERT INTO sessions (sid, user_id, tenant_id, created) VALUES (?, ?, ?, ?)",
                     (sid, user["id"], user["tenant_id"], clock.now()))
    return sid


def set_session_cookie(response: Response, sid: str) -> Response:
    response.set_cookie(SESSION_COOKIE, sid, path="/", secure=True, httponly=True, samesite="None")
    return response


def with_session(response: Response, sid: str | None) -> Response:
    """Set the session cookie unless the browser already carries this session."""
    if sid and request.cookies.get(SESSION_COOKIE) != sid:
        set_session_cookie(response, sid)
    return response


def end_sessions(sids: list[str]) -> None:
    with store().transaction() as conn:
        conn.executemany("UPDATE sessions SET ended = 1 WHERE sid = ?", [(sid,) for sid in sids])


def clear_session_cookie(response: Response) -> Response:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="None")
    return response


def satisfied_contexts(sid: str | None) -> set[str]:
    """The authentication contexts (c1..c99) this browser session satisfied with the extra step."""
    if not sid:
        return set()
    return {r[0] for r in db().execute("SELECT context FROM session_auth_contexts WHERE sid = ?", (sid,))}


def satisfy_contexts(sid: str, contexts: list[str]) -> None:
    with store().transaction() as conn:
        conn.executemany("INSERT OR REPLACE INTO session_auth_contexts (sid, context, at) VALUES (?, ?, ?)",
                         [(sid, context, clock.now()) for context in contexts])
