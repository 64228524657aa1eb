"""The floor under a first import's time: how long the database alone takes to write what it must write.

A first import of N users fills three tables: users (two unique indexes: e-mail, and tenant id + object id),
user_roles, and the import's mirror (import_source_users). This writes the same rows set-based, one INSERT ...
SELECT per table from an unindexed scratch table, with nothing else going on: no Graph, no Python per row, one
commit. Compare it with the read-and-discard baseline that `bench_import.py` prints for the same tenant size.

    .venv/bin/python bench/bench_db_floor.py                 # 100,000 users, a fresh SQLite file
    .venv/bin/python bench/bench_db_floor.py --database-url 'postgresql+psycopg://127.0.0.1:5432/test?options=-csearch_path%3Dfloor'

The PostgreSQL database (or schema) must be empty: the schema is created by the migrations.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FERNET = "x1vUJ3GXj4gWn3LkqOFd6V5Oq6l2sHfQ0t0Zf2J8m1c="


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--database-url", help="an empty database (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        os.environ.update(DATABASE_URL=args.database_url or f"sqlite:///{Path(tmp) / 'floor.db'}",
                          SECRET_KEY="bench-secret-key-0123456789-abcdefghijkl", TOKEN_ENCRYPTION_KEYS=FERNET)
        from flask_migrate import upgrade
        from sqlalchemy import text

        from app import create_app
        from core.extensions import db
        from core.models import Datasource, Role, ensure_roles
        from imports.models import UserImport

        app = create_app({"TESTING": True})
        with app.app_context():
            upgrade()
            ensure_roles()
            datasource = Datasource(name="Floor", tenant_id=str(uuid.uuid4()))
            db.session.add(datasource)
            db.session.flush()
            user_import = UserImport(datasource_id=datasource.id)
            db.session.add(user_import)
            db.session.commit()
            role_id = db.session.scalar(db.select(Role.id).where(Role.name == Role.USER))
            print(f"{args.users} users on {db.engine.dialect.name}:")
            print(f"  {_floor(db, text, args.users, datasource.tenant_id, user_import.id, role_id):.2f} s in all")


def _floor(db, text, count: int, tenant: str, import_id: int, role_id: int) -> float:  # type: ignore[no-untyped-def]
    conn = db.session.connection()
    conn.exec_driver_sql("CREATE TABLE floor_scratch (email VARCHAR(320), display_name VARCHAR(256), "
                         "object_id VARCHAR(64))")
    rows = [{"email": f"user.{n:06d}.{uuid.uuid4().hex[:6]}@contoso.example", "display_name": f"User {n}",
             "object_id": str(uuid.uuid4())} for n in range(count)]
    conn.execute(text("INSERT INTO floor_scratch VALUES (:email, :display_name, :object_id)"), rows)
    db.session.commit()
    steps = {
        "users": "INSERT INTO users (email, display_name, active, tenant_id, object_id, created_at, updated_at) "
                 "SELECT email, display_name, :yes, :tenant, object_id, :now, :now FROM floor_scratch ORDER BY email",
        "user_roles": "INSERT INTO user_roles (user_id, role_id) SELECT id, :role FROM users WHERE tenant_id = :tenant",
        "mirror": "INSERT INTO import_source_users (import_id, object_id, upn, mail, display_name, account_enabled, "
                  "removed, dirty, seen_round) "
                  "SELECT :import_id, object_id, email, email, display_name, :yes, :no, :no, 1 "
                  "FROM users WHERE tenant_id = :tenant ORDER BY object_id",
    }
    params = {"yes": True, "no": False, "tenant": tenant, "now": datetime(2026, 1, 1), "role": role_id,
              "import_id": import_id}
    started = time.perf_counter()
    for name, sql in steps.items():
        begun = time.perf_counter()
        db.session.execute(text(sql), params)
        print(f"  {name}: {time.perf_counter() - begun:.2f} s")
    begun = time.perf_counter()
    db.session.commit()
    print(f"  commit: {time.perf_counter() - begun:.2f} s")
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
