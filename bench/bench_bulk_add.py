"""Adding 1,000 users to a group: members@odata.bind in chunks of 20 versus one request per user.

Runs the tenant emulator in its own process (1,100 users), signs in as its Global Administrator, and counts the
Graph requests with the emulator's request counters. Target: at most 50 Graph requests for 1,000 users.

    .venv/bin/python bench/bench_bulk_add.py [--users 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from office365 import bulk  # noqa: E402
from office365 import operations as ops  # noqa: E402
from office365.graph import GraphClient, RetryPolicy, Timeouts  # noqa: E402
from office365.operations import GraphAccess, NewGroup  # noqa: E402
from tests.office365.emulator_support import Control, EmulatorProcess, EmulatorTokens  # noqa: E402

TARGET_REQUESTS = 50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()
    n = args.users

    with tempfile.TemporaryDirectory() as data:
        emu = EmulatorProcess(data, "--users", str(n + 100))
        try:
            domain = emu.config["tenants"][0]["domain"]
            tokens = EmulatorTokens(emu, f"admin@{domain}")
            client = GraphClient(emu.config["graph_url"], tokens, ca_bundle=emu.ca_path,
                                 timeouts=Timeouts(5, 30), retry=RetryPolicy(deadline=120))
            access = GraphAccess(client, can_write=True)
            control = Control(emu)
            users = [u.id for u in ops.iter_users(access, select="id")][:n]
            assert len(users) == n, f"the emulator has only {len(users)} users"

            # 1. bulk: members@odata.bind, 20 per PATCH
            group_bulk = ops.create_group(access, NewGroup(f"Bench bulk {uuid.uuid4().hex[:6]}")).group.id
            control.reset_counters()
            started = time.perf_counter()
            result = bulk.add_users_to_group(access, group_bulk, users)
            bulk_seconds = time.perf_counter() - started
            bulk_requests = control.graph_requests()
            assert result.count("added") == n, [i for i in result.items if i.outcome != "added"][:3]

            # 2. the one-request-per-user way: POST /groups/{id}/members/$ref for each user
            group_single = ops.create_group(access, NewGroup(f"Bench single {uuid.uuid4().hex[:6]}")).group.id
            control.reset_counters()
            started = time.perf_counter()
            outcomes = [ops.add_user_to_group(access, group_single, u).outcome for u in users]
            single_seconds = time.perf_counter() - started
            single_requests = control.graph_requests()
            assert outcomes.count("added") == n

            # both groups now hold exactly the n users (checked through Graph)
            for gid in (group_bulk, group_single):
                members = {m["id"] for m in client.iter_items(f"/groups/{gid}/members",
                                                              params={"$select": "id", "$top": 999})}
                assert members == set(users), gid
        finally:
            emu.stop()

    print(f"Adding {n} users to a group (emulator over HTTPS, requests counted by the emulator)")
    print(f"  members@odata.bind x20 : {bulk_requests:5d} Graph requests  {bulk_seconds:7.2f} s")
    print(f"  one request per user   : {single_requests:5d} Graph requests  {single_seconds:7.2f} s")
    print(f"  ratio                  : {single_requests / bulk_requests:5.1f}x fewer requests, "
          f"{single_seconds / bulk_seconds:5.1f}x faster")
    ok = bulk_requests <= TARGET_REQUESTS * n / 1000
    print(f"  target <= {TARGET_REQUESTS} requests per 1,000 users: {'met' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
