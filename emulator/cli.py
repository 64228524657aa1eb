"""`python -m emulator ...` serves; `python -m emulator ctl --data DIR VERB ...` drives the control API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import requests


def serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emulator",
                                description="Local Microsoft Entra ID + Graph v1.0 over HTTPS. "
                                            "`python -m emulator ctl --help` for the control verbs.")
    p.add_argument("--port", type=int, default=0, help="port to listen on (0 = any free port, printed)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--data", default="emulator-data", help="state directory (SQLite, CA, keys)")
    p.add_argument("--users", type=int, default=None, help="size the first tenant to N users (large tenant)")
    p.add_argument("--seed", type=int, default=1, help="seed for the deterministic tenant data")
    p.add_argument("--tenants", type=int, default=1)
    p.add_argument("--reset", action="store_true", help="start afresh (drop the state in --data)")
    p.add_argument("--redirect-uri", action="append", dest="redirect_uris", default=None,
                   help="redirect URI of the gateway client (repeatable)")
    p.add_argument("--front-channel-logout-url", default=None)
    p.add_argument("--client-id", default=None)
    p.add_argument("--client-secret", default=None)
    p.add_argument("--log-requests", action="store_true", help="log one line per request to stderr")
    return p


def ctl_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emulator ctl", description="Drive a running emulator.")
    p.add_argument("--data", default="emulator-data", help="the emulator's --data directory (emulator.json)")
    sub = p.add_subparsers(dest="verb", required=True)
    sub.add_parser("status")
    sub.add_parser("config")
    f = sub.add_parser("fault", help="inject a fault")
    f.add_argument("kind", choices=["throttle", "error", "delay", "drop", "aadsts", "rate"])
    f.add_argument("--scope", default="graph", choices=["graph", "token", "entra", "all"])
    f.add_argument("--status", type=int, default=0)
    f.add_argument("--code", default="")
    f.add_argument("--message", default="")
    f.add_argument("--retry-after", type=int, default=None)
    f.add_argument("--every", type=int, default=1, help="fire on every Nth matching request")
    f.add_argument("--seconds", type=float, default=None, help="only for this long")
    f.add_argument("--count", type=int, default=None, help="stop after this many hits")
    f.add_argument("--path", default="", help="only paths containing this")
    f.add_argument("--method", default="")
    f.add_argument("--delay-ms", type=int, default=0)
    f.add_argument("--aadsts", type=int, default=0, help="AADSTS code for kind aadsts")
    f.add_argument("--limit", type=int, default=0, help="rate: resource units allowed per window")
    f.add_argument("--window", type=float, default=None, help="rate: the window in seconds (default 10)")
    sub.add_parser("faults")
    sub.add_parser("clear-faults")
    c = sub.add_parser("counters")
    c.add_argument("--reset", action="store_true")
    r = sub.add_parser("revoke-user", help="revoke a user's refresh tokens (AADSTS50173)")
    r.add_argument("user", help="user id or UPN")
    g = sub.add_parser("revoke-grant", help="withdraw consent (AADSTS65001)")
    g.add_argument("--client-id", default=None)
    g.add_argument("--user", default=None)
    g.add_argument("--tenant", default=None)
    sub.add_parser("grants")
    sub.add_parser("expire-delta")
    k = sub.add_parser("clock")
    k.add_argument("--shift", type=float, default=None, help="seconds to move the clock by")
    k.add_argument("--offset", type=float, default=None)
    k.add_argument("--reset", action="store_true")
    sub.add_parser("rotate-keys")
    for verb in ("user-create", "group-create"):
        x = sub.add_parser(verb)
        x.add_argument("json", help="Graph-shaped properties as JSON")
        x.add_argument("--tenant", default=None)
    for verb in ("user-update", "group-update"):
        x = sub.add_parser(verb)
        x.add_argument("id")
        x.add_argument("json")
    for verb in ("user-delete", "group-delete"):
        x = sub.add_parser(verb)
        x.add_argument("id")
    for verb in ("member-add", "member-remove"):
        x = sub.add_parser(verb)
        x.add_argument("group_id")
        x.add_argument("member_id")
    cl = sub.add_parser("client", help="register or update a client")
    cl.add_argument("--client-id", default=None)
    cl.add_argument("--client-secret", default=None)
    cl.add_argument("--name", default=None)
    cl.add_argument("--redirect-uri", action="append", dest="redirect_uris", default=None)
    cl.add_argument("--front-channel-logout-url", default=None)
    sub.add_parser("clients")
    sub.add_parser("subscriptions", help="every app's change-notification subscriptions")
    sub.add_parser("notifications", help="delivery counters and the last POSTs to subscribers")
    lc = sub.add_parser("lifecycle", help="post a lifecycle notification for a subscription")
    lc.add_argument("id")
    lc.add_argument("event", choices=["reauthorizationRequired", "subscriptionRemoved", "missed"])
    lc.add_argument("--pause", action="store_true", help="reauthorizationRequired: stop change notifications")
    lc.add_argument("--drop", action="store_true", help="missed: discard the queued notifications")
    raw = sub.add_parser("raw", help="any control call: METHOD PATH [JSON]")
    raw.add_argument("method")
    raw.add_argument("path", help="e.g. /faults")
    raw.add_argument("json", nargs="?", default=None)
    return p


def ctl_request(args: argparse.Namespace) -> tuple[str, str, Any]:
    """(method, path under /_emulator, JSON body) for a parsed ctl command."""
    v = args.verb
    simple = {"status": ("GET", "/status"), "config": ("GET", "/config"), "faults": ("GET", "/faults"),
              "clear-faults": ("DELETE", "/faults"), "grants": ("GET", "/grants"),
              "expire-delta": ("POST", "/delta/expire"), "rotate-keys": ("POST", "/keys/rotate"),
              "clients": ("GET", "/clients"), "subscriptions": ("GET", "/subscriptions"),
              "notifications": ("GET", "/notifications")}
    if v in simple:
        return (*simple[v], None)
    if v == "fault":
        body = {"kind": args.kind, "scope": args.scope, "every": args.every, "path": args.path,
                "method": args.method}
        for name in ("status", "code", "message", "retry_after", "seconds", "count", "delay_ms", "aadsts", "limit",
                     "window"):
            value = getattr(args, name)
            if value not in (None, "", 0):
                body[name] = value
        return "POST", "/faults", body
    if v == "counters":
        return ("DELETE", "/counters", None) if args.reset else ("GET", "/counters", None)
    if v == "revoke-user":
        return "POST", "/revoke", {"user": args.user}
    if v == "revoke-grant":
        body = {k: getattr(args, k) for k in ("client_id", "user", "tenant") if getattr(args, k)}
        return "POST", "/grants/revoke", body
    if v == "clock":
        if args.reset:
            return "POST", "/clock", {"reset": True}
        if args.offset is not None:
            return "POST", "/clock", {"offset": args.offset}
        if args.shift is not None:
            return "POST", "/clock", {"shift": args.shift}
        return "GET", "/clock", None
    if v in ("user-create", "group-create"):
        body = json.loads(args.json)
        if args.tenant:
            body["tenant"] = args.tenant
        return "POST", "/users" if v == "user-create" else "/groups", body
    if v in ("user-update", "group-update"):
        return "PATCH", f"/{v.split('-')[0]}s/{args.id}", json.loads(args.json)
    if v in ("user-delete", "group-delete"):
        return "DELETE", f"/{v.split('-')[0]}s/{args.id}", None
    if v == "member-add":
        return "POST", f"/groups/{args.group_id}/members", {"id": args.member_id}
    if v == "member-remove":
        return "DELETE", f"/groups/{args.group_id}/members/{args.member_id}", None
    if v == "client":
        body = {"client_id": args.client_id, "client_secret": args.client_secret, "name": args.name,
                "redirect_uris": args.redirect_uris, "front_channel_logout_url": args.front_channel_logout_url}
        return "POST", "/clients", {k: val for k, val in body.items() if val is not None}
    if v == "lifecycle":
        body = {"event": args.event, **({"pause": True} if args.pause else {}), **({"drop": True} if args.drop else {})}
        return "POST", f"/subscriptions/{args.id}/lifecycle", body
    if v == "raw":
        return args.method.upper(), "/" + args.path.lstrip("/"), json.loads(args.json) if args.json else None
    raise SystemExit(f"unknown verb {v}")


def ctl(argv: list[str]) -> int:
    args = ctl_parser().parse_args(argv)
    config_path = Path(args.data) / "emulator.json"
    if not config_path.exists():
        print(f"{config_path} not found: is the emulator running with --data {args.data}?", file=sys.stderr)
        return 2
    config = json.loads(config_path.read_text())
    method, path, body = ctl_request(args)
    with requests.Session() as http:
        http.trust_env = False
        try:
            response = http.request(method, f"{config['base_url']}/_emulator{path}", json=body, timeout=30,
                                    verify=config["ca_bundle"],
                                    headers={"Authorization": f"Bearer {config['control_key']}"})
        except requests.RequestException as exc:
            print(f"cannot reach the emulator at {config['base_url']}: {exc}", file=sys.stderr)
            return 2
    try:
        print(json.dumps(response.json(), indent=2))
    except ValueError:
        print(response.text)
    return 0 if response.ok else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "ctl":
        return ctl(argv[1:])
    if argv and argv[0] == "serve":
        argv = argv[1:]
    args = serve_parser().parse_args(argv)
    # Imported here: the ctl commands only need requests, and loading the server (Flask, every blueprint, the
    # Graph routes) would slow each `python -m emulator ctl ...` call for nothing.
    from emulator.server import serve

    serve(args.data, args.host, args.port, users=args.users, seed=args.seed, tenants=args.tenants,
          reset=args.reset, client_id=args.client_id, client_secret=args.client_secret,
          redirect_uris=args.redirect_uris, front_channel_logout_url=args.front_channel_logout_url,
          log_requests=args.log_requests)
    return 0
