"""Walking every user of a 100,000-user tenant keeps the process's peak memory within 50 MB of its idle size.

Runs the tenant emulator in its own process (so its memory is not counted here), walks `/users` page by page
(`iter_users`, 999 per page) and measures this process's resident set size from /proc/self/status: idle VmRSS
before the walk, peak VmHWM during it (reset through /proc/self/clear_refs). For comparison it then measures the
naive way that keeps every user in a list.

    .venv/bin/python bench/bench_walk_memory.py [--users 100000]
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from office365 import operations as ops  # noqa: E402
from office365.graph import GraphClient, RetryPolicy, Timeouts  # noqa: E402
from office365.operations import GraphAccess  # noqa: E402
from tests.office365.emulator_support import Control, EmulatorProcess, EmulatorTokens  # noqa: E402

TARGET_MB = 50.0


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not possible here."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_mb() -> float:
    try:
        return _status_kb("VmHWM") / 1024
    except RuntimeError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(label: str, walk: Callable[[], int]) -> tuple[float, float, int, float]:
    gc.collect()
    idle = rss_mb()
    if not reset_peak():
        print("  (could not reset VmHWM: the peak includes earlier activity)")
    started = time.perf_counter()
    count = walk()
    seconds = time.perf_counter() - started
    peak = peak_mb()
    print(f"  {label:<28}: {count:7d} users in {seconds:6.2f} s, idle {idle:7.1f} MB, peak {peak:7.1f} MB, "
          f"peak - idle {peak - idle:6.1f} MB")
    return idle, peak, count, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data:
        emu = EmulatorProcess(data, "--users", str(args.users))
        try:
            domain = emu.config["tenants"][0]["domain"]
            tokens = EmulatorTokens(emu, f"admin@{domain}")
            client = GraphClient(emu.config["graph_url"], tokens, ca_bundle=emu.ca_path,
                                 timeouts=Timeouts(5, 60), retry=RetryPolicy(deadline=120))
            access = GraphAccess(client)
            control = Control(emu)
            ops.list_users(access, page_size=5)  # warm up: imports, TLS session, connection pool
            expected = int(client.get("/users/$count").body)
            control.reset_counters()

            print(f"Walking all users of a {expected}-user emulator tenant (over HTTPS, 999 per page)")

            def flat() -> int:
                return sum(1 for _ in ops.iter_users(access))

            idle, peak, count, _ = measure("page by page (iter_users)", flat)
            pages = control.counters()["counters"].get("GET /v1.0/users", 0)
            assert count == expected, (count, expected)
            delta = peak - idle

            def accumulate() -> int:
                everyone = list(ops.iter_users(access))
                return len(everyone)

            naive_idle, naive_peak, naive_count, _ = measure("all kept in a list (naive)", accumulate)
            naive_delta = naive_peak - naive_idle
        finally:
            emu.stop()

    print(f"  Graph requests for the walk : {pages} pages")
    print(f"  growth page by page         : {delta:6.1f} MB (target <= {TARGET_MB:.0f} MB): "
          f"{'met' if delta <= TARGET_MB else 'NOT MET'}")
    print(f"  growth keeping all users    : {naive_delta:6.1f} MB ({naive_delta / max(delta, 0.1):.1f}x)")
    assert naive_count == count
    return 0 if delta <= TARGET_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
