"""The Office 365 list pages' Graph reads on a 100,000-user tenant with a 20,000-member group (issue 12 points 1-2).

Runs the tenant emulator in its own process, adds a group of 20,000 members to its store, then times what each
page asks of Graph (the same operations the views call, over HTTPS): the User List with its total, sorted,
filtered and searched, its next page; the Group List with member counts; the big group's page with its total,
a search within its members, "is member 10,000 a member?", and the streamed CSV export of all 20,000 (Graph
pages, seconds, this process's peak memory growth). Each read is timed as the median of 3.

    .venv/bin/python bench/bench_lists.py [--users 100000] [--members 20000]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_walk_memory import peak_mb, reset_peak, rss_mb  # noqa: E402
from office365 import operations as ops  # noqa: E402
from office365.graph import GraphClient, RetryPolicy, Timeouts  # noqa: E402
from office365.listing import ListQuery  # noqa: E402
from office365.operations import GraphAccess  # noqa: E402
from tests.office365.emulator_support import EmulatorProcess, EmulatorTokens  # noqa: E402

PAGE_DEADLINE_S = 12.0  # O365_PAGE_DEADLINE's default: no page may wait on Graph longer


def timed(label: str, read: Callable[[], Any], client: GraphClient, rows: list[tuple[str, float, int]]) -> Any:
    times, result, sent = [], None, 0
    for _ in range(3):
        before = client.requests_sent
        started = time.perf_counter()
        result = read()
        times.append(time.perf_counter() - started)
        sent = client.requests_sent - before
    rows.append((label, statistics.median(times), sent))
    return result


def big_group(data: str, client: GraphClient, members: int) -> str:
    """A security group whose members are the first `members` generated users (written into the store)."""
    gid = client.request("POST", "/groups", json_body={
        "displayName": "Big Group", "mailNickname": "big-group", "mailEnabled": False, "securityEnabled": True,
        "groupTypes": []}).body["id"]
    conn = sqlite3.connect(Path(data) / "tenant.db", timeout=60)
    with conn:
        conn.execute("INSERT INTO memberships (group_id, member_id, relation) SELECT ?, id, 'member' FROM users "
                     "WHERE user_principal_name GLOB '*[0-9][0-9][0-9][0-9][0-9][0-9]@*' ORDER BY seq LIMIT ?",
                     (gid, members))
    conn.close()
    return gid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=20_000)
    args = parser.parse_args()
    rows: list[tuple[str, float, int]] = []

    with tempfile.TemporaryDirectory() as data:
        emu = EmulatorProcess(data, "--users", str(args.users))
        try:
            domain = emu.config["tenants"][0]["domain"]
            client = GraphClient(emu.config["graph_url"], EmulatorTokens(emu, f"admin@{domain}"),
                                 ca_bundle=emu.ca_path, timeouts=Timeouts(5, 60), retry=RetryPolicy(deadline=120))
            access = GraphAccess(client, can_write=True)
            ops.list_users(access, page_size=5)  # warm up: imports, TLS session, connection pool
            gid = big_group(data, client, args.members)

            first = timed("User List, page 1 of 50 with the total", lambda: ops.list_users(
                access, query=ListQuery()), client, rows)
            timed("User List, name Z-A", lambda: ops.list_users(access, query=ListQuery(sort="-displayName")),
                  client, rows)
            timed("User List, unlicensed in Sales", lambda: ops.list_users(
                access, query=ListQuery(filters=("unlicensed", "department:Sales"))), client, rows)
            timed("User List, enabled, newest first", lambda: ops.list_users(
                access, query=ListQuery(filters=("enabled",), sort="-createdDateTime")), client, rows)
            timed('Find Users "ann" (prefix)', lambda: ops.list_users(access, query=ListQuery(q="ann")), client, rows)
            timed("User List, next page (cursor)", lambda: ops.list_users(
                access, query=ListQuery(), cursor=first.next_cursor), client, rows)
            timed("Group List, page 1 with member counts", lambda: ops.list_groups(access, query=ListQuery()),
                  client, rows)
            timed(f"Group page: group + {args.members:,} members' page 1",
                  lambda: (ops.get_group(access, gid), ops.list_group_members(access, gid, query=ListQuery())),
                  client, rows)
            page = ops.list_group_members(access, gid, query=ListQuery(page_size=1))
            total = page.count
            timed('Members of the big group, "Lena" (prefix)', lambda: ops.list_group_members(
                access, gid, query=ListQuery(q="Lena")), client, rows)
            tenth = sorted(m.user_principal_name or "" for m in ops.iter_group_members(access, gid))[
                args.members // 2 - 1]
            found = timed(f"Is member {args.members // 2:,} a member? (by UPN)",
                          lambda: ops.find_member(access, gid, tenth), client, rows)
            assert found is not None and found.user_principal_name == tenth

            idle = rss_mb()
            reset_peak()
            before, started = client.requests_sent, time.perf_counter()
            exported = sum(1 for _ in ops.iter_group_members(access, gid))
            export_s, export_pages = time.perf_counter() - started, client.requests_sent - before
            growth = peak_mb() - idle
        finally:
            emu.stop()

    print(f"Lists on a {args.users:,}-user emulated tenant, a {args.members:,}-member group (median of 3, over HTTPS)")
    for label, seconds, sent in rows:
        flag = "" if seconds <= PAGE_DEADLINE_S else "  OVER THE PAGE DEADLINE"
        print(f"  {label:<50} {seconds:6.3f} s  {sent:3d} Graph request(s){flag}")
    print(f"  members total shown                                 {total:,}")
    print(f"  CSV export of the group: {exported:,} rows in {export_s:.2f} s, {export_pages} Graph pages, "
          f"peak memory growth {growth:.1f} MB (target <= 50 MB)")
    slowest = max(seconds for _, seconds, _ in rows)
    print(f"  slowest page read {slowest:.3f} s (page deadline {PAGE_DEADLINE_S:g} s): "
          f"{'met' if slowest <= PAGE_DEADLINE_S and growth <= 50 else 'NOT MET'}")
    return 0 if exported == total == args.members and slowest <= PAGE_DEADLINE_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
