"""Server-side sessions: the cookie carries only a random id; the data lives in the database or in Redis.

The store keeps SHA-256(id), never the id itself, so a database or Redis dump cannot be replayed as cookies.
Each session has an absolute expiry and an idle timeout (taken from the SSO settings when it is created).
`last_seen` is written at most once per touch interval (a sixtieth of the idle timeout, 1 s to 60 s) so read-only
requests (forward auth) stay cheap; the idle check allows the same slack, so a session never ends before the
configured idle time (and at most one touch interval after it).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from flask import Flask, Request, current_app, has_app_context, has_request_context, request
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSession, SessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, event, inspect, or_, select, update
from sqlalchemy.orm import Session as OrmSession
from werkzeug.wrappers import Response

from core import audit
from core.extensions import db
from core.models import User
from sso.models import UserSession
from sso.settings import current_settings

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_TOUCH_INTERVAL = 60.0
DEFAULT_IDLE = 3600
DEFAULT_ABSOLUTE = 12 * 3600
serializer = TaggedJSONSerializer()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def touch_interval(idle_seconds: int) -> float:
    """How stale the stored `last_seen` may get: a small fraction of the idle timeout (1 s to 60 s)."""
    return min(MAX_TOUCH_INTERVAL, max(1.0, idle_seconds / 60))


@dataclass
class SessionRecord:
    id_hash: str
    public_id: str
    data: dict[str, Any]
    created_at: float
    last_seen_at: float
    expires_at: float
    idle_seconds: int
    user_id: int | None = None
    ip: str | None = None
    user_agent: str | None = None
    provider: str | None = None
    idp_sid: str | None = None
    idp_sub: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Read beside the session (database store: joined from `users`), never stored: False = user disabled or gone.
    user_active: bool | None = field(default=None, compare=False)

    def idle_deadline(self) -> float:
        """`last_seen` lags the last request by less than one touch interval: allow that much on top."""
        return self.last_seen_at + self.idle_seconds + touch_interval(self.idle_seconds)

    def deadline(self) -> float:
        """When the session ends unless a request comes first (absolute expiry or idle timeout)."""
        return min(self.expires_at, self.idle_deadline())

    def expired(self, now: float) -> bool:
        return self.deadline() <= now

    def touch_due(self, now: float) -> bool:
        return now - self.last_seen_at >= touch_interval(self.idle_seconds)

    def refused(self) -> bool:
        """A signed-in session whose user is known to be disabled or deleted."""
        return self.user_id is not None and self.user_active is False


class SessionStore(Protocol):
    def get(self, id_hash: str) -> SessionRecord | None: ...
    def save(self, record: SessionRecord) -> None: ...
    def touch(self, record: SessionRecord) -> None: ...
    def delete(self, id_hash: str) -> None: ...
    def for_user(self, user_id: int) -> list[SessionRecord]: ...
    def end_for_user(self, user_id: int) -> int: ...
    def end_for_users(self, user_ids: Iterable[int], *, keep: str | None = None) -> int: ...
    def end_by_idp(self, provider: str | None, *, sid: str | None = None, sub: str | None = None) -> int: ...
    def end_for_providers(self, providers: Iterable[str]) -> int: ...
    def user_ids(self) -> set[int]: ...
    def for_users(self, user_ids: Iterable[int]) -> list[SessionRecord]: ...
    def update_data(self, record: SessionRecord) -> bool: ...


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _epoch(value: datetime | str) -> float:
    """A stored time as epoch seconds (the raw SQLite driver hands back text, naive meaning UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


class DatabaseStore:
    """The embedded default: the `user_sessions` table through Core statements (cheap per request)."""

    def __init__(self) -> None:

        self.table = UserSession.__table__
        self._local = threading.local()
        self.engine: Any = None
        self._opened: list[tuple[threading.Thread, Any]] = []
        self._lock = threading.Lock()
        self._watching = False

    def _close_all(self, _engine: Any) -> None:
        """`engine.dispose()` (shutdown, tests) closes the per-thread connections too."""
        opened, self._opened = self._opened, []
        self._local = threading.local()
        for _thread, conn in opened:
            with contextlib.suppress(Exception):  # already closed or broken
                conn.close()

    def _register(self, new_conn: Any) -> None:
        """Keep the new connection; close those of threads that have ended (thread-per-request servers)."""
        with self._lock:
            alive = [(threading.current_thread(), new_conn)]
            for thread, conn in self._opened:
                if thread.is_alive():
                    alive.append((thread, conn))
                else:
                    with contextlib.suppress(Exception):
                        conn.close()
            self._opened = alive

    def _record(self, row: Any, *, joined: bool = False) -> SessionRecord:
        """`joined`: the row carries `users.active` (NULL when the user is gone), so the record says whether the
        user may still use it."""
        active = bool(row.user_active) if joined and row.user_id is not None else None
        return SessionRecord(
            id_hash=row.id_hash, public_id=row.public_id, data=serializer.loads(row.data), user_id=row.user_id,
            created_at=_epoch(row.created_at), last_seen_at=_epoch(row.last_seen_at),
            expires_at=_epoch(row.expires_at), idle_seconds=row.idle_seconds, ip=row.ip,
            user_agent=row.user_agent, provider=row.provider, idp_sid=row.idp_sid, idp_sub=row.idp_sub,
            user_active=active)

    COLUMNS = ("id_hash", "public_id", "user_id", "data", "created_at", "last_seen_at", "expires_at",
               "idle_seconds", "ip", "user_agent", "provider", "idp_sid", "idp_sub")
    # The session and its user's `active` flag in one primary-key read (a LEFT JOIN on the users' primary key):
    # forward auth refuses a disabled or deleted user's session without a second query.
    FAST_SQL = (f"SELECT {', '.join('s.' + c for c in COLUMNS)}, u.active FROM user_sessions s "  # noqa: S608
                "LEFT JOIN users u ON u.id = s.user_id WHERE s.id_hash = {mark}")  # constants only

    def _with_user(self) -> Any:

        users = User.__table__
        return select(self.table, users.c.active.label("user_active")).select_from(
            self.table.outerjoin(users, users.c.id == self.table.c.user_id))

    def _from_fast_row(self, row: tuple) -> SessionRecord:
        return self._record(_Row({**dict(zip(self.COLUMNS, row[:-1], strict=True)), "user_active": row[-1]}),
                            joined=True)

    def get(self, id_hash: str) -> SessionRecord | None:
        """Read on every request: one primary-key SELECT on a per-thread autocommit DBAPI connection (no ORM
        session, no pool checkout), falling back to the ORM path if that connection fails."""
        try:
            row = self._fast_get(id_hash)
        except Exception:  # noqa: BLE001 - any driver error: drop the connection and use the normal path
            self._local.__dict__.pop("conn", None)
            found = db.session.execute(self._with_user().where(self.table.c.id_hash == id_hash)).first()
            return self._record(found, joined=True) if found is not None else None
        return self._from_fast_row(row) if row is not None else None

    def bind_engine(self) -> None:
        """Remember the engine (inside an app context) so `get_fast` can run outside one."""
        self.engine = db.engine

    def get_fast(self, id_hash: str) -> SessionRecord | None:
        row = self._fast_get(id_hash)
        return self._from_fast_row(row) if row is not None else None

    def _fast_get(self, id_hash: str) -> tuple | None:
        conn = getattr(self._local, "conn", None)
        engine = self.engine or db.engine
        if conn is None or getattr(self._local, "engine", None) is not engine:
            proxied = engine.raw_connection()
            proxied.detach()  # ours for this thread's life; the pool does not count it
            conn = proxied.dbapi_connection
            if engine.dialect.name == "postgresql":
                conn.autocommit = True
            self._local.conn, self._local.engine = conn, engine
            self._register(conn)
            if not self._watching:
                self._watching = True
                event.listen(engine, "engine_disposed", self._close_all)
            mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
            self._local.sql = self.FAST_SQL.format(mark=mark)
        cursor = conn.cursor()
        try:
            cursor.execute(self._local.sql, (id_hash,))
            return cursor.fetchone()
        finally:
            cursor.close()

    def save(self, record: SessionRecord) -> None:
        values = {"public_id": record.public_id, "user_id": record.user_id, "data": serializer.dumps(record.data),
                  "created_at": _dt(record.created_at), "last_seen_at": _dt(record.last_seen_at),
                  "expires_at": _dt(record.expires_at), "idle_seconds": record.idle_seconds, "ip": record.ip,
                  "user_agent": record.user_agent, "provider": record.provider, "idp_sid": record.idp_sid,
                  "idp_sub": record.idp_sub}
        done = db.session.execute(update(self.table).where(self.table.c.id_hash == record.id_hash).values(**values))
        if not done.rowcount:
            db.session.execute(self.table.insert().values(id_hash=record.id_hash, **values))
        db.session.commit()

    def touch(self, record: SessionRecord) -> None:
        db.session.execute(update(self.table).where(self.table.c.id_hash == record.id_hash)
                           .values(last_seen_at=_dt(record.last_seen_at)))
        db.session.commit()

    def delete(self, id_hash: str) -> None:
        db.session.execute(delete(self.table).where(self.table.c.id_hash == id_hash))
        db.session.commit()

    def for_user(self, user_id: int) -> list[SessionRecord]:
        rows = db.session.execute(select(self.table).where(self.table.c.user_id == user_id)
                                  .order_by(self.table.c.created_at.desc())).all()
        now = time.time()
        return [record for record in map(self._record, rows) if not record.expired(now)]

    def user_ids(self) -> set[int]:
        """The users who have a stored session (live access checks them against the directory)."""
        with db.engine.connect() as connection:
            return set(connection.execute(select(self.table.c.user_id).distinct().where(
                self.table.c.user_id.is_not(None), self.table.c.expires_at > _dt(time.time()))).scalars())

    def for_users(self, user_ids: Iterable[int]) -> list[SessionRecord]:
        """The live sessions of these users, 500 users per query, on a connection of its own."""
        ids, found, now = sorted(set(user_ids)), [], time.time()
        with db.engine.connect() as connection:
            for start in range(0, len(ids), 500):
                rows = connection.execute(select(self.table).where(self.table.c.user_id.in_(ids[start:start + 500])))
                found.extend(record for record in map(self._record, rows) if not record.expired(now))
        return found

    def update_data(self, record: SessionRecord) -> bool:
        """Write a session's data (its identity refreshed from the directory); False when it has ended meanwhile."""
        with db.engine.begin() as connection:
            return bool(connection.execute(update(self.table).where(self.table.c.id_hash == record.id_hash)
                                           .values(data=serializer.dumps(record.data))).rowcount)

    def end_for_user(self, user_id: int) -> int:
        return self.end_for_users([user_id])

    def end_for_users(self, user_ids: Iterable[int], *, keep: str | None = None) -> int:
        """Delete every session of these users (but `keep`, an id hash), in chunks, on its own connection: it is
        also called right after a commit, outside the ORM transaction."""
        ids, count = sorted(set(user_ids)), 0
        with db.engine.begin() as connection:
            for start in range(0, len(ids), 500):
                query = delete(self.table).where(self.table.c.user_id.in_(ids[start:start + 500]))
                if keep:
                    query = query.where(self.table.c.id_hash != keep)
                count += connection.execute(query).rowcount
        return count

    def end_by_idp(self, provider: str | None, *, sid: str | None = None, sub: str | None = None) -> int:
        if not sid and not sub:
            return 0
        query = delete(self.table)
        if provider:
            query = query.where(self.table.c.provider == provider)
        query = query.where(self.table.c.idp_sid == sid) if sid else query.where(self.table.c.idp_sub == sub)
        count = db.session.execute(query).rowcount
        db.session.commit()
        return count

    def end_for_providers(self, providers: Iterable[str]) -> int:
        """Delete every session signed in through these providers, on its own connection (called after a commit)."""
        names = sorted(set(providers))
        if not names:
            return 0
        with db.engine.begin() as connection:
            return connection.execute(delete(self.table).where(self.table.c.provider.in_(names))).rowcount

    def prune(self) -> int:
        """Sessions past their absolute expiry, and any without a user (anonymous ones are never stored now;
        older versions stored one per visit)."""
        now = _dt(time.time())
        count = db.session.execute(delete(self.table).where(
            or_(self.table.c.expires_at <= now, self.table.c.user_id.is_(None)))).rowcount
        db.session.commit()
        return count


PRUNE_ONE_IN = 200  # new sessions: one in this many also drops expired sessions (and any without a user)


def prune_now() -> bool:
    return secrets.randbelow(PRUNE_ONE_IN) == 0


class RedisStore:
    """With REDIS_URL: one key per session (TTL = what is left of it) and index sets per user and IdP session."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = f"{prefix}:sess:"

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _load(self, raw: str | None) -> SessionRecord | None:
        if not raw:
            return None
        values = json.loads(raw)
        values["data"] = serializer.loads(values["data"])
        values.pop("user_active", None)
        return SessionRecord(**values)

    def get(self, id_hash: str) -> SessionRecord | None:
        return self._load(self.redis.get(self._key("s", id_hash)))

    get_fast = get

    def _ttl(self, record: SessionRecord) -> int:
        left = min(record.expires_at, record.idle_deadline()) - time.time()
        return max(1, int(left) + 1)

    def save(self, record: SessionRecord) -> None:
        values = asdict(record)
        values.pop("user_active")
        values["data"] = serializer.dumps(record.data)
        ttl = self._ttl(record)
        pipe = self.redis.pipeline()
        pipe.set(self._key("s", record.id_hash), json.dumps(values), ex=ttl)
        index_ttl = max(ttl, int(record.expires_at - time.time()) + 1)
        for index in self._indexes(record):
            pipe.sadd(index, record.id_hash)
            pipe.expire(index, index_ttl, nx=True)  # a new set gets a TTL ...
            pipe.expire(index, index_ttl, gt=True)  # ... an existing one only ever a longer one
        pipe.execute()

    def _indexes(self, record: SessionRecord) -> list[str]:
        keys = []
        if record.user_id is not None:
            keys.append(self._key("u", str(record.user_id)))
        if record.idp_sid:
            keys.append(self._key("i", record.idp_sid))
        if record.idp_sub and record.provider:
            keys.append(self._key("b", record.provider, record.idp_sub))
        return keys

    # `last_seen_at` alone, in place: a touch never writes back the data a request read (live access may have
    # refreshed the identity since), and never brings back a session that ended meanwhile.
    TOUCH_SCRIPT = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local values = cjson.decode(raw)
values['last_seen_at'] = tonumber(ARGV[1])
redis.call('SET', KEYS[1], cjson.encode(values), 'EX', tonumber(ARGV[2]))
return 1
"""

    def touch(self, record: SessionRecord) -> None:
        self.redis.eval(self.TOUCH_SCRIPT, 1, self._key("s", record.id_hash), repr(record.last_seen_at),
                        self._ttl(record))

    def delete(self, id_hash: str) -> None:
        self.redis.delete(self._key("s", id_hash))

    def _members(self, index: str) -> list[SessionRecord]:
        hashes = sorted(self.redis.smembers(index))
        if not hashes:
            return []
        raws = self.redis.mget([self._key("s", h) for h in hashes])
        stale = [h for h, raw in zip(hashes, raws, strict=True) if raw is None]
        if stale:
            self.redis.srem(index, *stale)
        return [record for raw in raws if (record := self._load(raw)) is not None]

    def for_user(self, user_id: int) -> list[SessionRecord]:
        now = time.time()
        records = [r for r in self._members(self._key("u", str(user_id)))
                   if not r.expired(now) and r.user_id == user_id]
        return sorted(records, key=lambda r: r.created_at, reverse=True)

    def _end(self, records: list[SessionRecord]) -> int:
        if records:
            self.redis.delete(*[self._key("s", r.id_hash) for r in records])
        return len(records)

    def end_for_user(self, user_id: int) -> int:
        return self.end_for_users([user_id])

    def end_for_users(self, user_ids: Iterable[int], *, keep: str | None = None) -> int:
        """Delete every session of these users (but `keep`, an id hash): two pipelined round trips per 500 users."""
        ids, count = sorted(set(user_ids)), 0
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            pipe = self.redis.pipeline(transaction=False)
            for user_id in chunk:
                pipe.smembers(self._key("u", str(user_id)))
            hashes = {h for members in pipe.execute() for h in members if h != keep}
            if hashes:
                count += int(self.redis.delete(*[self._key("s", h) for h in sorted(hashes)]))
        return count

    def user_ids(self) -> set[int]:
        """The users with a session index (one SCAN over the per-user index keys)."""
        prefix = self._key("u", "")
        return {int(key[len(prefix):]) for key in self.redis.scan_iter(match=prefix + "*", count=1000)
                if key[len(prefix):].isdigit()}

    def for_users(self, user_ids: Iterable[int]) -> list[SessionRecord]:
        """The live sessions of these users: two pipelined round trips per 500 users."""
        ids, found, now = sorted(set(user_ids)), [], time.time()
        for start in range(0, len(ids), 500):
            pipe = self.redis.pipeline(transaction=False)
            for user_id in ids[start:start + 500]:
                pipe.smembers(self._key("u", str(user_id)))
            hashes = sorted({h for members in pipe.execute() for h in members})
            if hashes:
                raws = self.redis.mget([self._key("s", h) for h in hashes])
                found.extend(record for raw in raws if (record := self._load(raw)) is not None
                             and not record.expired(now))
        return found

    def update_data(self, record: SessionRecord) -> bool:
        """Write a session's data, keeping its expiry; never brings back a session that ended meanwhile (XX)."""
        values = asdict(record)
        values.pop("user_active")
        values["data"] = serializer.dumps(record.data)
        return bool(self.redis.set(self._key("s", record.id_hash), json.dumps(values), xx=True, keepttl=True))

    def end_by_idp(self, provider: str | None, *, sid: str | None = None, sub: str | None = None) -> int:
        if sid:
            records = [r for r in self._members(self._key("i", sid)) if not provider or r.provider == provider]
        elif sub and provider:
            records = self._members(self._key("b", provider, sub))
        else:
            return 0
        return self._end(records)

    def end_for_providers(self, providers: Iterable[str]) -> int:
        """Delete every session signed in through these providers. There is no index per provider (an
        Administrator's rare action): one pass over the session keys, 500 at a time."""
        names, count = set(providers), 0
        if not names:
            return 0
        keys = self.redis.scan_iter(match=self._key("s", "*"), count=500)
        while chunk := list(itertools.islice(keys, 500)):
            records = [record for raw in self.redis.mget(chunk) if (record := self._load(raw)) is not None]
            count += self._end([record for record in records if record.provider in names])
        return count

    def prune(self) -> int:
        return 0  # keys expire by themselves


def store() -> DatabaseStore | RedisStore:
    app = current_app
    found = app.extensions.get("gw_session_store")
    if found is None:
        url = app.config.get("REDIS_URL")
        found = RedisStore(url, app.config.get("REDIS_PREFIX", "gw")) if url else DatabaseStore()
        app.extensions["gw_session_store"] = found
    return found


class ServerSession(SecureCookieSession):
    """The Flask session, plus the record it was loaded from and flags to issue a new id at save."""

    def __init__(self, initial: Any = None, *, token: str | None = None, record: SessionRecord | None = None,
                 had_cookie: bool = False) -> None:
        super().__init__(initial)
        self.token = token
        self.record = record
        self.had_cookie = had_cookie
        self.regenerate = False  # a new, empty session (sign-in, sign-out)
        self.rotate = False  # the same session under a new id (after a password change)


def renew_session() -> None:
    """At sign-in: drop everything and issue a fresh id (no session fixation)."""
    from flask import session

    session.clear()
    session.regenerate = True  # type: ignore[attr-defined]


def timeouts() -> tuple[int, int]:
    """(idle, absolute) seconds from the SSO settings, cached a few seconds per process."""

    settings = current_settings()
    return settings.idle_timeout_minutes * 60, settings.absolute_timeout_hours * 3600


def user_is_active(user_id: int) -> bool:

    users = User.__table__
    with db.engine.connect() as connection:  # a fresh read, outside whatever the ORM session holds
        return bool(connection.execute(select(users.c.active).where(users.c.id == user_id)).scalar())


ANONYMOUS_SALT = "gw-anonymous-session"
ANONYMOUS_MAX_AGE = 24 * 3600


def worth_storing(session: ServerSession) -> bool:
    """Only a signed-in session is kept server-side; an anonymous visitor's CSRF token or flashed message
    travels in a signed cookie instead, so a visit without signing in stores nothing."""
    return bool(session.get("_user_id"))


class ServerSideSessionInterface(SessionInterface):
    serializer = serializer

    def _signer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        return URLSafeTimedSerializer(app.secret_key, salt=ANONYMOUS_SALT, serializer=self.serializer,
                                      signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256})

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        token = request.cookies.get(self.get_cookie_name(app))
        if not token:
            return ServerSession()
        if not TOKEN_PATTERN.fullmatch(token):  # an anonymous session's signed cookie, or garbage
            return self._open_anonymous(app, token)
        id_hash = hash_token(token)
        try:
            record = store().get(id_hash)
        except (ValueError, TypeError, KeyError):
            record = None
        if record is None:
            return ServerSession(had_cookie=True)
        if record.expired(time.time()) or record.refused():
            store().delete(id_hash)
            return ServerSession(had_cookie=True)
        return ServerSession(record.data, token=token, record=record, had_cookie=True)

    def _open_anonymous(self, app: Flask, value: str) -> ServerSession:
        signer = self._signer(app)
        if signer is None or len(value) > 4000:
            return ServerSession(had_cookie=True)
        try:
            data = signer.loads(value, max_age=ANONYMOUS_MAX_AGE)
        except (BadSignature, ValueError, TypeError, KeyError):
            return ServerSession(had_cookie=True)
        if not isinstance(data, dict) or data.get("_user_id"):  # a signed cookie never signs anyone in
            return ServerSession(had_cookie=True)
        return ServerSession(data, had_cookie=True)

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:  # type: ignore[override]
        name, domain, path = self.get_cookie_name(app), self.get_cookie_domain(app), self.get_cookie_path(app)
        backend = store()
        if session.regenerate and session.record is not None:
            backend.delete(session.record.id_hash)
            session.record = None
        if session.accessed:
            response.vary.add("Cookie")
        if not worth_storing(session):
            if session.record is not None:  # signed out (or its user gone): nothing of it stays server-side
                backend.delete(session.record.id_hash)
            if not session:
                if session.had_cookie or session.record is not None:
                    response.delete_cookie(name, domain=domain, path=path, secure=self.get_cookie_secure(app),
                                           httponly=True, samesite=self.get_cookie_samesite(app))
                return
            signer = self._signer(app)
            if signer is not None and (session.modified or session.record is not None or session.regenerate):
                response.set_cookie(name, signer.dumps(dict(session)), domain=domain, path=path,
                                    secure=self.get_cookie_secure(app), httponly=True,
                                    samesite=self.get_cookie_samesite(app))
            return
        now = time.time()
        record = session.record
        if record is None or session.rotate:
            if record is None:
                idle, absolute = timeouts()
                record = SessionRecord(id_hash="", public_id=secrets.token_hex(8), data={}, created_at=now,
                                       last_seen_at=now, expires_at=now + absolute, idle_seconds=idle)
                if has_request_context():
                    record.ip = request.remote_addr
                    record.user_agent = (request.user_agent.string or "")[:256]
            else:  # same data, times and public id under a new id; the old id stops working
                backend.delete(record.id_hash)
            token = secrets.token_urlsafe(32)
            record.id_hash = hash_token(token)
            session.token, session.record = token, record
            self._write(backend, session, record, now)
            if prune_now():
                backend.prune()
            response.vary.add("Cookie")
            response.set_cookie(name, token, domain=domain, path=path, secure=self.get_cookie_secure(app),
                                httponly=True, samesite=self.get_cookie_samesite(app))
        elif session.modified:
            adopt_refreshed_identity(backend, session, record)
            self._write(backend, session, record, now)
        elif record.touch_due(now):
            record.last_seen_at = now
            backend.touch(record)

    @staticmethod
    def _write(backend: Any, session: ServerSession, record: SessionRecord, now: float) -> None:
        signing_in = record.user_id is None
        record.data = dict(session)
        user_id = session.get("_user_id")
        record.user_id = int(user_id) if isinstance(user_id, str) and user_id.isdigit() else None
        sso = session.get("sso") or {}
        record.provider, record.idp_sid, record.idp_sub = sso.get("provider"), sso.get("sid"), sso.get("sub")
        record.last_seen_at = now
        backend.save(record)
        if signing_in and record.user_id is not None and not user_is_active(record.user_id):
            # Disabled (or removed) between the sign-in's check and this save: its sessions were ended before
            # this one existed, so end this one too.
            backend.delete(record.id_hash)


def identity_revision(identity: Any) -> int:
    """How many times live access refreshed this identity from the directory (0: as signed in)."""
    value = identity.get("rev") if isinstance(identity, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def adopt_refreshed_identity(backend: Any, session: ServerSession, record: SessionRecord) -> None:
    """Before a request writes its changed session back: if live access refreshed the stored identity after this
    request read it, keep the stored one (a request's write must not undo a group removal)."""
    ours = session.get("identity")
    if not isinstance(ours, dict):
        return
    stored = backend.get(record.id_hash)
    theirs = stored.data.get("identity") if stored is not None else None
    if isinstance(theirs, dict) and identity_revision(theirs) > identity_revision(ours) and \
            theirs.get("signed_in_at") == ours.get("signed_in_at"):  # not when this request signed in again
        session["identity"] = theirs


def end_user_sessions(user_ids: Iterable[int], *, keep: str | None = None) -> int:
    """End every session of these users (but `keep`, an id hash) in the configured store. Every path that
    disables or removes a user, or sets their password, calls it after its commit (the ORM hooks below for
    ORM writes; the import for its Core statements)."""
    ids = [int(user_id) for user_id in user_ids]
    return store().end_for_users(ids, keep=keep) if ids else 0


def end_provider_sessions_on_commit(providers: Iterable[str]) -> None:
    """End every session signed in through these providers once the current transaction commits (not at all if
    it rolls back): after the commit that turned the providers off, no new session can join them."""
    db.session.info.setdefault("gw_ended_providers", set()).update(providers)


def _ended_users(orm_session: OrmSession) -> set[int]:

    ended = {obj.id for obj in orm_session.deleted if isinstance(obj, User) and obj.id is not None}
    for obj in orm_session.dirty:
        if isinstance(obj, User):
            history = inspect(obj).attrs.active.history
            if history.added and not obj.active:  # set to False (the old value may not have been loaded)
                ended.add(obj.id)
    return ended


def _new_passwords(orm_session: OrmSession) -> list[Any]:
    """Existing users whose password was set (or cleared) in this flush."""

    return [obj for obj in orm_session.dirty
            if isinstance(obj, User) and obj.id is not None and inspect(obj).attrs.password_hash.history.added]


def _current_session_of(user_id: int) -> ServerSession | None:
    """The request's own session when it belongs to `user_id` (a user setting their own password keeps it)."""
    if not has_request_context():
        return None
    from flask import session

    record = getattr(session, "record", None)
    if isinstance(session, ServerSession) and record is not None and record.user_id == user_id:
        return session
    return None


def _audit_in(orm_session: OrmSession, action: str, target: str, **detail: Any) -> None:
    """An audit row committed with the change it records (in the ORM session that flushes it)."""

    row = audit.record(action, target, **detail)
    if orm_session is not db.session():
        db.session.expunge(row)
        orm_session.add(row)


_listening = False


def install(app: Flask) -> None:
    """Use server-side sessions; end every session of a user the moment they are disabled or deleted, their other
    sessions when their password is set, and the sessions of providers a committed change asked to end."""
    global _listening

    app.session_interface = ServerSideSessionInterface()
    if _listening:
        return
    _listening = True

    @event.listens_for(OrmSession, "after_flush")
    def remember_ended(orm_session: OrmSession, _context: Any) -> None:
        ended = _ended_users(orm_session)
        if ended:
            orm_session.info.setdefault("gw_disabled_users", set()).update(ended)
        for user in _new_passwords(orm_session):
            current = _current_session_of(user.id)
            orm_session.info.setdefault("gw_new_passwords", {})[user.id] = current
            _audit_in(orm_session, "user.sessions_end", user.email, reason="password changed",
                      current_session_kept=current is not None)

    @event.listens_for(OrmSession, "after_rollback")
    def forget_ended(orm_session: OrmSession) -> None:
        orm_session.info.pop("gw_disabled_users", None)
        orm_session.info.pop("gw_new_passwords", None)
        orm_session.info.pop("gw_ended_providers", None)

    @event.listens_for(OrmSession, "after_commit")
    def end_ended(orm_session: OrmSession) -> None:
        ended = orm_session.info.pop("gw_disabled_users", None)
        new_passwords = orm_session.info.pop("gw_new_passwords", None)
        providers = orm_session.info.pop("gw_ended_providers", None)
        if not has_app_context():
            return
        if providers:
            store().end_for_providers(providers)
        if ended:
            end_user_sessions(ended)
        for user_id, current in (new_passwords or {}).items():
            if user_id in (ended or ()):
                continue
            end_user_sessions([user_id], keep=current.record.id_hash if current and current.record else None)
            if current is not None:
                current.rotate = True  # the kept session continues under a new id
