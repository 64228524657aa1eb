"""The Office 365 list pages themselves, rendered by the gateway, on a 100,000-user tenant with a 20,000-member
group (issue 12 points 1-2): each page's wall time through the app (Graph reads over HTTPS to the emulator, the
view, the template), the median of 3, against the 12 s page deadline.

The gateway runs in this process on a SQLite file (migrated like the tests' database), signed in as an
Administrator, with a datasource authorized at the emulator the way an administrator does it.

    .venv/bin/python bench/bench_list_pages.py [--users 100000] [--members 20000]
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator.server import start_in_thread  # noqa: E402
from tests.conftest import (  # noqa: E402
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    TEST_FERNET_KEY,
    FreshGlobalsClient,
    _build_app,
    _migrate,
    make_user,
    sign_in,
)
from tests.o365_helpers import CALLBACK_PATH, emulator_env  # noqa: E402
from tests.o365_ops_helpers import authorized_datasource  # noqa: E402

DEADLINE_S = 12.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=20_000)
    args = parser.parse_args()
    from core.extensions import db
    from core.models import ensure_roles

    with tempfile.TemporaryDirectory() as tmp:
        emu = start_in_thread(Path(tmp) / "emulator", users=args.users,
                              redirect_uris=[f"http://localhost{CALLBACK_PATH}"])
        try:
            url = f"sqlite:///{tmp}/gateway.db"
            _migrate(url)
            app = _build_app(url, Path(tmp), ENV={
                "DATABASE_URL": url, "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijkl",
                "TOKEN_ENCRYPTION_KEYS": TEST_FERNET_KEY, **emulator_env(emu)})
            with app.app_context():
                ensure_roles()
                db.session.commit()
                make_user(ADMIN_EMAIL, ADMIN_PASSWORD, "Administrator", name="Ada Admin")
                app.test_client_class = FreshGlobalsClient  # each request its own `g`, as in production
                client = app.test_client()
                signed = sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
                assert signed.status_code == 302, signed.get_data(as_text=True)[:3000]
                ds = authorized_datasource(client, emu, app)
                app.config.pop("GRAPH_RETRY")  # the product's own retry policy and timeouts, not the tests'
                app.config.pop("GRAPH_TIMEOUTS")
                store = Path(tmp) / "emulator" / "tenant.db"
                conn = sqlite3.connect(store, timeout=60)
                gid = conn.execute("SELECT id FROM groups WHERE display_name = 'Retail'").fetchone()[0]
                with conn:
                    conn.execute("INSERT OR IGNORE INTO memberships (group_id, member_id, relation) SELECT ?, id, "
                                 "'member' FROM users ORDER BY seq LIMIT ?", (gid, args.members))
                members = conn.execute("SELECT count(*) FROM memberships WHERE group_id = ?", (gid,)).fetchone()[0]
                upn = conn.execute("SELECT user_principal_name FROM users ORDER BY seq LIMIT 1 OFFSET ?",
                                   (args.members // 2,)).fetchone()[0]
                conn.close()
                base = f"/admin/datasources/{ds.id}/o365"
                first = client.get(f"{base}/users").get_data(as_text=True)
                following = re.search(r'id="next-page"[^>]*href="([^"]+)"', first).group(1)  # type: ignore[union-attr]
                pages = {
                    "User List (page 1, total)": f"{base}/users",
                    "User List, next page": following.replace("&amp;", "&"),
                    "User List, unlicensed in Sales, Z-A": f"{base}/users?filter=unlicensed&department=Sales"
                                                           "&sort=-displayName",
                    "User List, enabled, newest first, 200": f"{base}/users?filter=enabled&sort=-createdDateTime"
                                                             "&size=200",
                    'Find Users "lena"': f"{base}/users?q=lena",
                    "Group List (member counts)": f"{base}/groups",
                    f"Group page, {members:,} members": f"{base}/groups/{gid}",
                    'Group page, members "lena"': f"{base}/groups/{gid}?q=lena",
                    f"Group page, is member {args.members // 2:,} a member?": f"{base}/groups/{gid}?member={upn}",
                    "Local Users page": "/admin/users?sort=-created",
                }
                rows = []
                for label, path in pages.items():
                    times = []
                    for _ in range(3):
                        started = time.perf_counter()
                        response = client.get(path)
                        times.append(time.perf_counter() - started)
                        assert response.status_code == 200 and b'id="operation-error"' not in response.data, label
                    rows.append((label, statistics.median(times)))
        finally:
            emu.stop()
    print(f"List pages on a {args.users:,}-user emulated tenant (median of 3, through the gateway)")
    for label, seconds in rows:
        print(f"  {label:<48} {seconds:6.3f} s")
    slowest = max(s for _, s in rows)
    verdict = "met" if slowest <= DEADLINE_S else "NOT MET"
    print(f"  slowest page {slowest:.3f} s (page deadline {DEADLINE_S:g} s): {verdict}")
    return 0 if slowest <= DEADLINE_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
