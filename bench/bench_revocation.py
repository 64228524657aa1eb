"""Seconds from a change in Entra to the gateway denying that person (issue 15, point 6).

A gateway (this checkout, SQLite or --database-url, its embedded job consumer, served on loopback) in front of the
tenant emulator with a 10,000-user tenant (--users). The gateway's datasource is authorized and is the sign-in
provider; the access rules let app.example.com in for the members of one group. Users of that group sign in (each
trial takes three new ones). At t0 the emulated tenant, through its control API, removes one from the group,
disables the second and revokes the third's sign-in sessions; the script then polls /auth/verify with each one's
session cookie (every --interval s; with --through-nginx through README's nginx block with its 5-second decision
cache) until it is refused, and prints p50/p95/max seconds to denial per change type, with change notifications on
(Graph posts to the gateway's /graph/notifications) and off (the fallback poll, every 60 s by default). Then the
Graph requests the gateway spends at idle: counted by the emulator over --idle seconds, and per hour at the
configured intervals (a poll a minute without notifications; a reconciling round every LIVE_RECONCILE_SECONDS and
the subscriptions' renewals with them). Targets: p95 <= 60 s with notifications, <= 300 s without.

    .venv/bin/python bench/bench_revocation.py [--users 10000] [--trials 5] [--modes on,off] [--idle 150]
        [--poll-seconds 60] [--through-nginx] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_forward_auth import FERNET, free_port  # noqa: E402

CHANGES = ("group removal", "disable", "revoke")
HOST = "app.example.com"


class Gateway:
    """The gateway app on a loopback port, with its job consumer, and the tenant emulator it is authorized on."""

    def __init__(self, folder: Path, args: argparse.Namespace) -> None:
        from flask_migrate import upgrade
        from werkzeug.serving import make_server

        from app import create_app
        from core.extensions import db
        from core.models import ensure_roles
        from emulator.server import start_in_thread
        from tests.sso_helpers import SSO_PATHS

        self.port = free_port()
        base = f"http://127.0.0.1:{self.port}"
        print(f"starting the tenant emulator with {args.users:,} users ...", flush=True)
        self.emu = start_in_thread(folder / "emulator", users=args.users, redirect_uris=[
            f"{host}{path}" for host in (base, "http://localhost") for path in SSO_PATHS])
        from tests.o365_helpers import emulator_env

        env = {"DATABASE_URL": args.database_url or f"sqlite:///{folder}/gateway.db",
               "SECRET_KEY": "bench-" + "k" * 40, "TOKEN_ENCRYPTION_KEYS": FERNET, "PUBLIC_BASE_URL": base,
               "ALLOWED_REDIRECT_DOMAINS": ".example.com", "JOBS_SQLITE_PATH": str(folder / "jobs.db"),
               **emulator_env(self.emu)}
        self.app = create_app({"ENV": env, "JOBS_CONSUMER": True, "JOBS_WORKERS": 2})
        with self.app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            ensure_roles()
            db.session.commit()
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base = base
        self.control_auth = {"Authorization": f"Bearer {self.emu.config['control_key']}"}

    def control(self, method: str, path: str, body: dict | None = None) -> Any:
        answer = requests.request(method, f"{self.emu.base_url}/_emulator/{path}", json=body, timeout=30,
                                  verify=self.emu.ca_path, headers=self.control_auth)
        if answer.status_code >= 300:
            raise SystemExit(f"emulator control {method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json() if answer.content else {}

    def outbound(self) -> tuple[int, int]:
        """(Graph requests, token requests) the emulator has counted so far."""
        answer = self.control("GET", "counters")
        tokens = sum(count for name, count in answer["counters"].items() if name.endswith("/token"))
        return int(answer["graph"]), tokens

    def stop(self) -> None:
        from jobs.queue import stop_embedded_consumer

        stop_embedded_consumer()
        self.server.shutdown()
        self.emu.stop()


def set_up(gw: Gateway) -> tuple[int, str, list[tuple[str, str]]]:
    """The authorized datasource (also the sign-in provider), the group, and its signable members."""
    from core.extensions import db
    from policies import service
    from tests.conftest import FreshGlobalsClient, make_user, sign_in
    from tests.o365_helpers import authorize_datasource, create_datasource, datasource_named
    from tests.sso_helpers import add_office365_provider, enable_sso

    gw.app.test_client_class = FreshGlobalsClient
    with gw.app.app_context():
        make_user("admin@example.com", "bench-admin-password", "Administrator")
        admin = gw.app.test_client()
        sign_in(admin, "admin@example.com", "bench-admin-password")
        create_datasource(admin, sso=True)
        authorize_datasource(admin, gw.emu, datasource_named())
        enable_sso(create_users=True)
        datasource = datasource_named()
        add_office365_provider(datasource)
        store = gw.emu.app.extensions["emulator.store"].conn()
        group_id, group_name = store.execute(
            "SELECT g.id, g.display_name FROM groups g JOIN memberships m ON m.group_id = g.id "
            "WHERE m.relation = 'member' GROUP BY g.id ORDER BY count(*) DESC LIMIT 1").fetchone()
        members = store.execute(
            "SELECT u.id, u.user_principal_name FROM users u JOIN memberships m ON m.member_id = u.id "
            "WHERE m.group_id = ? AND m.relation = 'member' AND u.account_enabled = 1 "
            "AND (SELECT count(*) FROM memberships x WHERE x.member_id = u.id) < 100 ORDER BY u.seq",
            (group_id,)).fetchall()
        service.save({"rules": [{"name": "Reports", "host": HOST, "criteria": {
            "groups_any": [{"id": group_id, "name": group_name}]}}]}, actor="admin@example.com")
        datasource_id = datasource.id
        db.session.remove()
    return datasource_id, group_id, [(row[0], row[1]) for row in members]


def signed_in_cookie(gw: Gateway, upn: str) -> str:
    from tests.sso_helpers import microsoft_sign_in

    with gw.app.app_context():
        browser = gw.app.test_client()
        answer = microsoft_sign_in(browser, gw.emu, "contoso", upn)
        if answer.status_code != 302:
            raise SystemExit(f"{upn} could not sign in: {answer.status_code}")
        return browser.get_cookie("gw_session").value


def allowed(gw: Gateway, cookie: str, nginx_port: int | None) -> bool:
    if nginx_port is not None:
        answer = requests.get(f"http://127.0.0.1:{nginx_port}/index.html", allow_redirects=False, timeout=10,
                              headers={"Host": HOST, "Cookie": f"gw_session={cookie}"})
    else:
        answer = requests.get(f"{gw.base}/auth/verify", timeout=10, headers={
            "Cookie": f"gw_session={cookie}", "X-Original-URL": f"https://{HOST}/reports/q3",
            "X-Original-Method": "GET"})
    return answer.status_code == 200


def live_state(gw: Gateway, datasource_id: int) -> Any:
    from sqlalchemy import select

    from core.extensions import db
    from live.models import LiveAccess

    with gw.app.app_context():
        live = db.session.scalar(select(LiveAccess).where(LiveAccess.datasource_id == datasource_id))
        db.session.expunge_all()
        return live


def configure(gw: Gateway, datasource_id: int, notifications: bool, poll_seconds: int) -> None:
    """Live access on (notifications on or off), its subscriptions made, and a first round read the tenant."""
    from sqlalchemy import select

    from core.extensions import db
    from live.models import LiveAccess
    from live.subscriptions import maintain
    from live.sync import request_sync

    with gw.app.app_context():
        live = db.session.scalar(select(LiveAccess).where(LiveAccess.datasource_id == datasource_id))
        if live is None:
            live = LiveAccess(datasource_id=datasource_id)
            db.session.add(live)
        live.enabled, live.notifications, live.poll_seconds = True, notifications, poll_seconds
        db.session.commit()
        maintain(datasource_id)
        before = live_state(gw, datasource_id).last_round_at
        request_sync(datasource_id, "bench", delay=0)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = live_state(gw, datasource_id)
        if state.last_round_at is not None and state.last_round_at != before and state.sync_reason != "bench":
            break
        time.sleep(0.5)
    state = live_state(gw, datasource_id)
    print(f"  live access: notifications {'on' if notifications else 'off'}, fallback polling "
          f"{'on' if state.fallback_reason or not notifications else 'off'}"
          f"{' (' + state.fallback_reason + ')' if state.fallback_reason else ''}", flush=True)


def change(gw: Gateway, kind: str, user_id: str, group_id: str) -> None:
    if kind == "group removal":
        gw.control("DELETE", f"groups/{group_id}/members/{user_id}")
    elif kind == "disable":
        gw.control("PATCH", f"users/{user_id}", {"accountEnabled": False})
    else:
        gw.control("POST", "revoke", {"user": user_id})


def trial(gw: Gateway, people: list[tuple[str, str]], group_id: str, args: argparse.Namespace,
          nginx_port: int | None) -> dict[str, float]:
    """Three people signed in and allowed; at t0 one change each; seconds until each is refused."""
    cookies = [signed_in_cookie(gw, upn) for _, upn in people]
    for cookie in cookies:
        if not allowed(gw, cookie, nginx_port):
            raise SystemExit("a signed-in member of the group was not let in before the change")
    started: dict[str, float] = {}
    for kind, (user_id, _) in zip(CHANGES, people, strict=True):
        change(gw, kind, user_id, group_id)
        started[kind] = time.monotonic()
    denied: dict[str, float] = {}
    deadline = time.monotonic() + args.timeout
    while len(denied) < len(CHANGES) and time.monotonic() < deadline:
        for kind, cookie in zip(CHANGES, cookies, strict=True):
            if kind not in denied and not allowed(gw, cookie, nginx_port):
                denied[kind] = time.monotonic() - started[kind]
        time.sleep(args.interval)
    for kind in CHANGES:
        denied.setdefault(kind, float("inf"))
    return denied


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def nginx_in_front(gw: Gateway, folder: Path) -> tuple[int, Any]:
    """README's nginx block (decision cache included) on a port of its own, serving a static page as the app."""
    from bench_protected_app import app_servers, start_nginx, wait_for_nginx

    static, cache = folder / "static", folder / "cache"
    static.mkdir()
    cache.mkdir()
    (static / "index.html").write_text("<!doctype html><title>App</title>\n")
    ports = {"unprotected": free_port(), "protected": free_port(), "protected + cache": free_port()}
    servers = app_servers(gw.port, static, cache, ports)
    process = start_nginx(folder, servers, 1)
    wait_for_nginx(ports["protected + cache"], process, folder)
    return ports["protected + cache"], process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--modes", default="on,off", help="notifications on, off, or both")
    parser.add_argument("--poll-seconds", type=int, default=60, help="the fallback poll's interval")
    parser.add_argument("--idle", type=float, default=150.0, help="seconds of idle counted per mode")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between /auth/verify polls")
    parser.add_argument("--timeout", type=float, default=420.0, help="give up on a change after this long")
    parser.add_argument("--through-nginx", action="store_true", help="poll through README's nginx block and cache")
    parser.add_argument("--database-url")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gw = Gateway(folder, args)
        nginx = None
        try:
            datasource_id, group_id, members = set_up(gw)
            needed = 3 * args.trials * len(args.modes.split(","))
            if len(members) < needed:
                raise SystemExit(f"the group has {len(members)} signable members; {needed} are needed")
            random.Random(7).shuffle(members)
            nginx_port = None
            if args.through_nginx:
                nginx_port, nginx = nginx_in_front(gw, folder)
            results: dict[str, dict[str, list[float]]] = {}
            idle: dict[str, tuple[int, int, float]] = {}
            per_round: dict[str, int] = {}
            for mode in args.modes.split(","):
                notifications = mode.strip() == "on"
                print(f"-- notifications {mode}", flush=True)
                configure(gw, datasource_id, notifications, args.poll_seconds)
                seconds: dict[str, list[float]] = {kind: [] for kind in CHANGES}
                for number in range(args.trials):
                    people, members = members[:3], members[3:]
                    # t0 anywhere in the poll's cycle (a trial ends just after a round: starting at once would
                    # always wait nearly a whole interval)
                    time.sleep(random.uniform(0, 3.0 if notifications else float(args.poll_seconds)))
                    for kind, value in trial(gw, people, group_id, args, nginx_port).items():
                        seconds[kind].append(value)
                    print(f"  trial {number + 1}: " + ", ".join(f"{kind} {values[-1]:.1f} s"
                                                               for kind, values in seconds.items()), flush=True)
                results[mode] = seconds
                per_round[mode] = idle_round_cost(gw, datasource_id)
                graph, tokens = gw.outbound()
                time.sleep(args.idle)
                graph_after, tokens_after = gw.outbound()
                idle[mode] = (graph_after - graph, tokens_after - tokens, args.idle)
            report(results, idle, per_round, args, gw)
        finally:
            if nginx is not None:
                nginx.terminate()
            gw.stop()


def idle_round_cost(gw: Gateway, datasource_id: int) -> int:
    """Graph requests of one delta round when nothing changed (asked for now, waited for)."""
    from live.sync import request_sync

    before = live_state(gw, datasource_id).last_round_at
    graph, _ = gw.outbound()
    with gw.app.app_context():
        request_sync(datasource_id, "bench", delay=0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and live_state(gw, datasource_id).last_round_at == before:
        time.sleep(0.2)
    time.sleep(0.5)
    return gw.outbound()[0] - graph


def report(results: dict[str, dict[str, list[float]]], idle: dict[str, tuple[int, int, float]],
           per_round: dict[str, int], args: argparse.Namespace, gw: Gateway) -> None:
    reconcile = float(gw.app.config.get("LIVE_RECONCILE_SECONDS", 900))
    where = "through nginx's decision cache" if args.through_nginx else "at /auth/verify"
    print(f"\nseconds from the change to denial ({where}; {args.trials} trials, {args.users:,} users)")
    print(f"{'notifications':14} {'change':14} {'p50':>7} {'p95':>7} {'max':>7}  target")
    for mode, seconds in results.items():
        target = 60 if mode.strip() == "on" else 300
        for kind, values in seconds.items():
            p95 = percentile(values, 0.95)
            print(f"{mode:14} {kind:14} {statistics.median(values):7.1f} {p95:7.1f} {max(values):7.1f}  "
                  f"p95 <= {target} s {'OK' if p95 <= target else 'MISSED'}")
    print(f"\nrequests to Microsoft at idle ({args.users:,}-user tenant)")
    for mode, (graph, tokens, window) in idle.items():
        rounds_per_hour = 3600 / args.poll_seconds if mode.strip() == "off" else 3600 / reconcile
        print(f"notifications {mode:3}: Graph {graph} and token {tokens} in {window:.0f} s = "
              f"{graph * 3600 / window:.0f} Graph requests/h measured; a round with no change costs "
              f"{per_round[mode]} Graph requests x {rounds_per_hour:.0f} rounds/h = "
              f"{per_round[mode] * rounds_per_hour:.0f} Graph requests/h scheduled (+ about 1 token refresh/h)")


if __name__ == "__main__":
    main()
