"""The import's database writes: bulk statements straight to the driver, and per-transaction durability.

A 100,000-user import spends most of its time here, so rows go to `executemany` without SQLAlchemy's per-row
parameter processing, and each page's (or merge's) transaction is tuned to the resume guarantee.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from core.extensions import db
from core.models import User
from imports.models import SourceMembership, SourceUser, StagedPage

USERS = User.__table__
MIRROR = SourceUser.__table__
MEMBERS = SourceMembership.__table__
STAGED = StagedPage.__table__


MIRROR_COLUMNS = ["import_id", "object_id", "upn", "mail", "display_name", "account_enabled", "removed", "dirty",
                  "seen_round"]
CREATE_COLUMNS = ["email", "display_name", "active", "tenant_id", "object_id", "created_at", "updated_at"]
UPDATE_COLUMNS = ["id", "email", "display_name", "active", "updated_at"]


def upsert(table: Any, rows: list[dict[str, Any]], keys: list[str], update_cols: list[str]) -> None:
    if not rows:
        return
    dialect = db.session.get_bind().dialect.name
    stmt = (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))
    if update_cols:
        stmt = stmt.on_conflict_do_update(index_elements=keys,
                                          set_={c: getattr(stmt.excluded, c) for c in update_cols})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    db.session.execute(stmt, rows)


_SQL_CACHE: dict[tuple[str, ...], str] = {}


def bulk(kind: str, table: Any, columns: list[str], rows: list[dict[str, Any]], *, keys: tuple[str, ...] = (),
          update_cols: tuple[str, ...] = ()) -> int:
    """executemany straight to the driver: the hot path of a 100,000-user import, where SQLAlchemy's per-row
    parameter processing would cost more than the database. `kind`: insert, insert_ignore (skip rows clashing with
    any unique constraint), upsert (on `keys`) or update (by id). Returns the rows written."""
    if not rows:
        return 0
    conn = db.session.connection()
    dialect = conn.dialect.name
    cache_key = (dialect, kind, table.name, *columns, "|", *keys, "|", *update_cols)
    sql = _SQL_CACHE.get(cache_key)
    if sql is None:
        mark = (lambda n: f":{n}") if dialect == "sqlite" else (lambda n: f"%({n})s")
        if kind == "update":
            sets = ", ".join(f"{c} = {mark(c)}" for c in columns if c != "id")
            sql = f"UPDATE {table.name} SET {sets} WHERE id = {mark('id')}"  # noqa: S608 - fixed names
        else:
            sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - fixed names
                   f"VALUES ({', '.join(mark(c) for c in columns)})")
            if kind == "upsert":
                sets = ", ".join(f"{c} = excluded.{c}" for c in update_cols)
                sql += f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
            elif kind == "insert_ignore":
                sql += " ON CONFLICT DO NOTHING"
        _SQL_CACHE[cache_key] = sql
    return int(conn.exec_driver_sql(sql, rows).rowcount or 0)


def tune_transaction(first: bool = False) -> None:
    """Durability to match the resume guarantee, set at the start of a page's (or a merge's) transaction.

    A crash may lose the last few commits but never half of one: a lost commit loses its next link with it, so
    the next run reads those pages again. SQLite: write-ahead logging (the web app keeps reading while the import
    writes) and NORMAL sync, per connection and never inside a transaction, so once per DBAPI connection
    (remembered in its info). PostgreSQL: `synchronous_commit = off` for this transaction only (the pooled
    connection keeps its own setting for everyone else)."""
    conn = db.session.connection()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
    elif conn.dialect.name == "sqlite":
        if first:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        if first or not conn.info.get("import_tuned"):
            conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
            conn.exec_driver_sql("PRAGMA cache_size=-16000")
            conn.exec_driver_sql("PRAGMA wal_autocheckpoint=10000")  # fold many pages' writes into one checkpoint
            conn.info["import_tuned"] = True


def db_time(value: Any) -> Any:
    """A timestamp as the driver wants it for our UTCDateTime columns (bound once per page, not per row)."""
    dialect = db.session.connection().dialect
    process = USERS.c.updated_at.type._cached_bind_processor(dialect)
    return process(value) if process else value


def chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]
