"""Decide one request against the access policy: `evaluate(RequestFacts, identity) -> Decision`.

The current document is compiled once per version (host patterns, path prefixes and globs as regular expressions,
networks parsed, group ids as sets) and shared by every request of the process. Rules are tried in order and the
first rule whose host, path, method and network match decides:

- `public`: answered without sign-in;
- `allow`: every criterion given must hold, else the request is DENIED with the failing criterion in words (no
  fall-through to later rules); a too old sign-in or a missing authentication context is a `step_up`;
- `deny`: denied when its criteria hold (none given: everyone); when they do not, the next rules are tried.

No rule matching: the host's default (`signed_in`: any signed-in user; `deny`), and with no host entry any signed-in
user is allowed (the gateway's behaviour before policies).

Which version is current is asked of the database at most every POLICY_REFRESH_SECONDS (1 s by default) per
process; a save in this process is seen at once. The WSGI fast path uses the compiled policy only while that check
is fresh (`compiled_if_fresh`), otherwise the Flask view refreshes it.
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
import posixpath
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from flask import Flask, current_app
from sqlalchemy import func, select

from core.extensions import db
from core.models import Group
from policies.models import PolicyVersion

OUTCOMES = ("allowed", "denied", "not_signed_in", "step_up", "public")
CRITERIA = ("providers", "tenants", "emails", "domains", "groups_any", "groups_all", "app_roles",
            "max_auth_age_minutes", "auth_context")
DEFAULT_REFRESH_SECONDS = 1.0
HOST_CACHE_LIMIT = 4096
MATCH_CACHE_LIMIT = 8192
MATCH_CACHE_PATH = 512  # longer paths are matched every time (bounded memory)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RequestFacts:
    """The request the proxy asks about: method, host (no port), path (no query) and the trusted client IP."""

    method: str
    host: str
    path: str
    client_ip: str | None = None


@dataclass(frozen=True)
class Decision:
    outcome: str  # allowed | denied | not_signed_in | step_up | public
    rule_id: str = ""
    rule_name: str = ""
    criterion: str = ""
    reason: str = ""
    granting_groups: tuple[dict[str, str], ...] = ()
    auth_context: str | None = None
    max_age_seconds: int | None = None
    policy_version: int = 0


def normalize_path(path: str) -> str:
    """The path as the upstream app sees it: percent-decoded, dot segments resolved, repeated slashes folded.

    Rules are matched on this form so that `/public/../admin` or `/%61dmin` cannot slip past a rule."""
    path = (path or "/").split("?", 1)[0].split("#", 1)[0]
    if path.startswith("/") and "%" not in path and "//" not in path and "/." not in path:
        return path  # already what the app sees (the common case)
    decoded = unquote(path, errors="replace")
    if not decoded.startswith("/"):
        decoded = "/" + decoded
    trailing = decoded.endswith("/") and decoded != "/"
    normal = posixpath.normpath(re.sub("/+", "/", decoded))
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    return normal + "/" if trailing and normal != "/" else normal


def normalize_host(host: str) -> str:
    host = (host or "").strip().lower()
    if host.startswith("["):  # [v6]:port
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def glob_regex(pattern: str) -> re.Pattern[str]:
    """`*` any characters but `/`, `**` any characters, `?` one character but `/`; the whole path must match."""
    return re.compile(glob_source(pattern) + r"\Z")


def glob_source(pattern: str) -> str:
    out = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        out.append("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char))
        index += 1
    return "".join(out)


def first_segments(paths: list[str]) -> frozenset[str] | None:
    """The first path segments a rule's paths can match (None: any, e.g. `/`, every path, or a glob in it)."""
    segments = set()
    for path in paths:
        segment, slash, _ = path[1:].partition("/")
        if not segment or is_glob(segment) or (not slash and path.endswith("*")):
            return None
        segments.add(segment)
    return frozenset(segments) if paths else None


def paths_regex(paths: list[str]) -> re.Pattern[str] | None:
    """One expression for a rule's paths: a prefix ending in / matches what starts with it, another prefix itself
    and what is under it (`/reports` matches /reports and /reports/x, not /reportsx), a glob the whole path."""
    if not paths:
        return None
    parts = []
    for path in paths:
        if is_glob(path):
            parts.append(glob_source(path) + r"\Z")
        elif path.endswith("/"):
            parts.append(re.escape(path))
        else:
            parts.append(re.escape(path) + r"(?:/|\Z)")
    return re.compile("|".join(f"(?:{part})" for part in parts))


def is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def host_matches(pattern: str, host: str) -> bool:
    """`*` any host, `*.example.com` any name under example.com (not example.com itself), else exact."""
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def describe_age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return "less than a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} days"


def _names(groups: tuple[dict[str, str], ...]) -> str:
    return ", ".join(group.get("name") or group["id"] for group in groups)


def group_reason(criterion: str, groups: tuple[dict[str, str], ...]) -> str:
    if criterion == "groups_any" and len(groups) > 1:
        return f"not in any of the groups {_names(groups)}"
    return f"not in group {_names(groups)}"


@dataclass
class CompiledRule:
    id: str
    name: str
    host: str
    paths: re.Pattern[str] | None  # None: every path
    segments: frozenset[str] | None  # the first path segments it can match; None: any
    methods: frozenset[str]
    networks: tuple[Network, ...]
    action: str
    groups_any: tuple[dict[str, str], ...] = ()
    groups_all: tuple[dict[str, str], ...] = ()
    app_roles: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()
    providers: frozenset[str] = frozenset()
    max_age_seconds: int | None = None
    auth_context: str | None = None
    any_ids: frozenset[str] = frozenset()
    all_ids: tuple[str, ...] = ()

    def matches_method_and_path(self, method: str, path: str) -> bool:
        if self.methods and method not in self.methods and not (method == "HEAD" and "GET" in self.methods):
            return False  # HEAD is a GET without the body: a rule for GET covers it
        return self.paths is None or self.paths.match(path) is not None

    def matches_request(self, method: str, path: str, ip: Any) -> bool:
        if not self.matches_method_and_path(method, path):
            return False
        if self.networks:
            if ip is None:
                return False
            if not any(ip.version == net.version and ip in net for net in self.networks):
                return False
        return True

    def mismatch(self, host: str, method: str, path: str, ip: Any) -> str:
        """Why this rule does not match the request, in words ("" when it does)."""
        if not host_matches(self.host, host):
            return f"host {host or '(none)'} is not {self.host}"
        if self.paths is not None and self.paths.match(path) is None:
            return f"path {path} is not one of its paths"
        if self.methods and method not in self.methods and not (method == "HEAD" and "GET" in self.methods):
            return f"method {method} is not {', '.join(sorted(self.methods))}"
        if not self.matches_request(method, path, ip):
            return f"client address {ip or '(unknown)'} is not in its networks"
        return ""

    def failing(self, identity: Mapping[str, Any], now: float) -> tuple[str, str, tuple[dict[str, str], ...]] | None:
        """The first criterion that does not hold, as (criterion, reason, granting groups), or None."""
        email = str(identity.get("email") or "").lower()
        if self.providers and str(identity.get("provider") or "").lower() not in self.providers:
            return ("providers", f"signed in with {identity.get('provider') or 'an unknown provider'}; this path "
                    f"needs {', '.join(sorted(self.providers))}", ())
        if self.tenants and str(identity.get("tid") or "").lower() not in self.tenants:
            return "tenants", f"tenant {identity.get('tid') or '(none)'} is not allowed here", ()
        if self.emails and email not in self.emails:
            return "emails", f"{email or 'this account'} is not on this rule's list of people", ()
        if self.domains and email.rpartition("@")[2] not in self.domains:
            return "domains", f"e-mail domain {email.rpartition('@')[2] or '(none)'} is not allowed here", ()
        groups: set[str] | None = None
        if self.any_ids or self.all_ids:
            groups = {str(g).lower() for g in identity.get("groups") or ()}
        if self.any_ids and groups is not None and groups.isdisjoint(self.any_ids):
            return "groups_any", group_reason("groups_any", self.groups_any), self.groups_any
        if self.all_ids and groups is not None:
            missing = tuple(g for g in self.groups_all if g["id"].lower() not in groups)
            if missing:
                return "groups_all", group_reason("groups_all", missing), missing
        if self.app_roles:
            roles = {str(role) for role in identity.get("roles") or ()}
            if roles.isdisjoint(self.app_roles):
                wanted = sorted(self.app_roles)
                if len(wanted) == 1:
                    return "app_roles", f"needs app role {wanted[0]}", ()
                return "app_roles", f"needs one of the app roles {', '.join(wanted)}", ()
        if self.max_age_seconds is not None:
            auth_time = identity.get("auth_time")
            needed = describe_age(self.max_age_seconds)
            if not isinstance(auth_time, int | float) or isinstance(auth_time, bool):
                return "max_auth_age_minutes", f"sign-in time unknown; this path needs {needed}", ()
            if now - auth_time > self.max_age_seconds:
                return "max_auth_age_minutes", f"signed in {describe_age(now - auth_time)} ago; this path needs " \
                                               f"{needed}", ()
        if self.auth_context and self.auth_context not in {str(acr) for acr in identity.get("acrs") or ()}:
            return "auth_context", f"needs authentication context {self.auth_context}", ()
        return None


STEP_UP_CRITERIA = ("max_auth_age_minutes", "auth_context")


class HostRules:
    """The rules that can match one host, in order, indexed by the first path segment they can match; the host's
    default (None: no entry); whether any of them names networks."""

    __slots__ = ("_any", "_by_segment", "default", "headers", "networks", "rules")

    def __init__(self, rules: list[CompiledRule], default: str | None, networks: bool,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.rules = rules
        self.default = default
        self.networks = networks
        self.headers = headers  # (header name, claim): what this host passes upstream beside the fixed set
        by_segment: dict[str, list[int]] = {}
        anywhere: list[int] = []
        for position, rule in enumerate(rules):
            if rule.segments is None:
                anywhere.append(position)
            else:
                for segment in rule.segments:
                    by_segment.setdefault(segment, []).append(position)
        self._any = [rules[position] for position in anywhere]
        self._by_segment = {segment: [rules[position] for position in heapq.merge(positions, anywhere)]
                            for segment, positions in by_segment.items()}

    def for_path(self, path: str) -> list[CompiledRule]:
        """The rules whose paths can match `path` judging by its first segment, in their order."""
        return self._by_segment.get(path[1:].partition("/")[0], self._any)

    def networks_for(self, method: str, path: str) -> bool:
        """Whether a rule whose method and path match names networks: the decision may then depend on the client
        address."""
        return self.networks and any(rule.networks and rule.matches_method_and_path(method, path)
                                     for rule in self.for_path(path))


@dataclass
class CompiledPolicy:
    """One version, compiled. Which rules match a request's host, method, path (and client IP when a candidate
    rule names networks) is remembered (MATCH_CACHE_LIMIT entries), so a page's repeated requests skip the scan."""

    version: int
    rules: list[CompiledRule]
    hosts: list[tuple[str, str]]  # (pattern, default), exact before wildcards, longer wildcards first
    host_headers: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # pattern -> headers
    by_id: dict[str, CompiledRule] = field(default_factory=dict)
    _by_host: dict[str, HostRules] = field(default_factory=dict)
    _matches: dict[tuple[str, str, str, str | None], tuple[tuple[CompiledRule, ...], str | None]] = field(
        default_factory=dict)
    _by_address: dict[tuple[str, str, str], bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {rule.id: rule for rule in self.rules if rule.id}

    def for_host(self, host: str) -> HostRules:
        found = self._by_host.get(host)
        if found is None:
            rules = [rule for rule in self.rules if host_matches(rule.host, host)]
            entry = next(((pattern, value) for pattern, value in self.hosts if host_matches(pattern, host)), None)
            default = entry[1] if entry else None
            headers = self.host_headers.get(entry[0], ()) if entry else ()
            found = HostRules(rules, default, any(rule.networks for rule in rules), headers)
            if len(self._by_host) >= HOST_CACHE_LIMIT:
                self._by_host.clear()
            self._by_host[host] = found
        return found

    def depends_on_address(self, facts: RequestFacts) -> bool:
        """Whether the decision for `facts` (normalized) may change with the client address alone: a rule for its
        host, method and path names networks (remembered like `matching`)."""
        candidates = self.for_host(facts.host)
        if not candidates.networks:
            return False
        key = (facts.method.upper(), facts.host, facts.path)
        found = self._by_address.get(key)
        if found is None:
            found = candidates.networks_for(key[0], facts.path)
            if len(facts.path) <= MATCH_CACHE_PATH:
                if len(self._by_address) >= MATCH_CACHE_LIMIT:
                    self._by_address.clear()
                self._by_address[key] = found
        return found

    def holds_for(self, decision: Decision, identity: Mapping[str, Any], now: float) -> float | None:
        """Seconds an `allowed` decision stays allowed as time alone passes (None: no time limit): the allowing
        rule's max_auth_age_minutes runs out at auth_time + max age. Nothing else in a decision changes with time
        (a deny rule skipped because the sign-in is too old stays skipped)."""
        rule = self.by_id.get(decision.rule_id) if decision.rule_id else None
        if rule is None or rule.max_age_seconds is None:
            return None
        auth_time = identity.get("auth_time")
        if not isinstance(auth_time, int | float) or isinstance(auth_time, bool):
            return 0.0
        return auth_time + rule.max_age_seconds - now

    def matching(self, method: str, host: str, path: str, client_ip: str | None
                 ) -> tuple[tuple[CompiledRule, ...], str | None]:
        """The rules whose host, path, method and networks match, in order, and the host's default."""
        candidates = self.for_host(host)
        key = (method, host, path, client_ip if candidates.networks else None)
        found = self._matches.get(key)
        if found is None:
            if candidates.networks:
                found = self._scan_with_networks(candidates, method, host, path, client_ip)
            else:
                found = (tuple(rule for rule in candidates.for_path(path)
                               if rule.matches_method_and_path(method, path)), candidates.default)
            if len(path) <= MATCH_CACHE_PATH:
                if len(self._matches) >= MATCH_CACHE_LIMIT:
                    self._matches.clear()
                self._matches[key] = found
        return found

    def _scan_with_networks(self, candidates: HostRules, method: str, host: str, path: str,
                            client_ip: str | None) -> tuple[tuple[CompiledRule, ...], str | None]:
        """`matching` for a host whose rules name networks: one pass that also notes, for `depends_on_address`,
        whether a rule matching the method and path names networks (the decision cache asks right after)."""
        ip = _ip(client_ip)
        matched, depends = [], False
        for rule in candidates.for_path(path):
            if not rule.matches_method_and_path(method, path):
                continue
            if rule.networks:
                depends = True
                if ip is None or not any(ip.version == net.version and ip in net for net in rule.networks):
                    continue
            matched.append(rule)
        if len(path) <= MATCH_CACHE_PATH:
            if len(self._by_address) >= MATCH_CACHE_LIMIT:
                self._by_address.clear()
            self._by_address[(method.upper(), host, path)] = depends
        return tuple(matched), candidates.default

    def evaluate(self, facts: RequestFacts, identity: Mapping[str, Any] | None, now: float | None = None,
                 normalized: bool = False, trace: list[TraceStep] | None = None) -> Decision:
        """Decide `facts` (`normalized`: host and path already went through normalize_host/normalize_path).
        With `trace`, every enabled rule tried is appended to it with what it did (the What if? view), by the same
        code path: only the rules that cannot match are looked at one by one instead of through the index."""
        host = facts.host if normalized else normalize_host(facts.host)
        path = facts.path if normalized else normalize_path(facts.path)
        method = facts.method.upper()
        moment = time.time() if now is None else now
        if trace is None:
            rules, default = self.matching(method, host, path, facts.client_ip)
        else:
            rules, default = self._traced(method, host, path, facts.client_ip, trace), self.for_host(host).default
        decision = self._decide(rules, default, host, identity, moment, trace)
        if trace is not None and not decision.rule_id:
            trace.append(TraceStep(0, "", "", decision.outcome, decision.reason or (
                "no rule matched: any signed-in user" if default is None else f"no rule matched: host default "
                                                                             f"{default}")))
        return decision

    def _traced(self, method: str, host: str, path: str, client_ip: str | None, trace: list[TraceStep]
                ) -> Iterator[CompiledRule]:
        ip = _ip(client_ip)
        for position, rule in enumerate(self.rules, 1):
            why = rule.mismatch(host, method, path, ip)
            if why:
                trace.append(TraceStep(position, rule.id, rule.name, "skipped", why))
            else:
                trace.append(TraceStep(position, rule.id, rule.name, "matched", "host, path, method and network "
                                                                                  "match"))
                yield rule

    def _decide(self, rules: Iterable[CompiledRule], default: str | None, host: str,
                identity: Mapping[str, Any] | None, moment: float, trace: list[TraceStep] | None) -> Decision:
        for rule in rules:
            if rule.action == "public":
                return self._noted(trace, Decision("public", rule.id, rule.name, "", "public path",
                                                   policy_version=self.version))
            if not identity:
                return self._noted(trace, Decision("not_signed_in", rule.id, rule.name, "signed_in", "not signed in",
                                                   policy_version=self.version))
            failed = rule.failing(identity, moment)
            if rule.action == "deny":
                if failed is None:
                    return self._noted(trace, Decision("denied", rule.id, rule.name, "deny_rule",
                                                       f"denied by rule {rule.name}", policy_version=self.version))
                if trace is not None:
                    trace[-1] = replace(trace[-1], result="continued",
                                        detail=f"deny rule whose criteria do not hold ({failed[1]})")
                continue
            if failed is None:
                return self._noted(trace, Decision("allowed", rule.id, rule.name, policy_version=self.version))
            criterion, reason, granting = failed
            if criterion in STEP_UP_CRITERIA:
                return self._noted(trace, Decision(
                    "step_up", rule.id, rule.name, criterion, reason, (),
                    rule.auth_context if criterion == "auth_context" else None,
                    rule.max_age_seconds if criterion == "max_auth_age_minutes" else None,
                    policy_version=self.version))
            return self._noted(trace, Decision("denied", rule.id, rule.name, criterion, reason, granting,
                                               policy_version=self.version))
        if not identity:
            return Decision("not_signed_in", "", "", "signed_in", "not signed in", policy_version=self.version)
        if default == "deny":
            return Decision("denied", "", "", "host_default", f"no rule allows this path on {host or 'this host'}",
                            policy_version=self.version)
        return Decision("allowed", policy_version=self.version)

    @staticmethod
    def _noted(trace: list[TraceStep] | None, decision: Decision) -> Decision:
        if trace is not None and trace:
            trace[-1] = replace(trace[-1], result=decision.outcome, detail=decision.reason or "all criteria hold")
        return decision


@dataclass(frozen=True)
class TraceStep:
    """One rule tried for What if?: its position (1-based among the enabled rules; 0: the host default or the
    no-match answer), what it did (skipped | matched | continued | allowed | denied | step_up | public |
    not_signed_in) and why, in words."""

    position: int
    rule_id: str
    rule_name: str
    result: str
    detail: str


@functools.lru_cache(maxsize=4096)
def _ip(value: str | None) -> Any:
    if not value:
        return None
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def _groups(items: Any) -> tuple[dict[str, str], ...]:
    return tuple({"id": str(g["id"]), "name": str(g.get("name") or g["id"])} for g in items or ())


def compile_rule(rule: Mapping[str, Any]) -> CompiledRule:
    paths = [unquote(str(p)) for p in rule.get("paths") or ()]  # compared with decoded request paths
    criteria = rule.get("criteria") or {}
    max_age = criteria.get("max_auth_age_minutes")
    compiled = CompiledRule(
        id=str(rule.get("id") or ""), name=str(rule.get("name") or rule.get("id") or ""),
        host=normalize_host(str(rule.get("host") or "*")) or "*", paths=paths_regex(paths),
        segments=first_segments(paths),
        methods=frozenset(str(m).upper() for m in rule.get("methods") or ()),
        networks=tuple(ipaddress.ip_network(str(n), strict=False) for n in rule.get("networks") or ()),
        action=str(rule.get("action") or "allow"),
        groups_any=_groups(criteria.get("groups_any")), groups_all=_groups(criteria.get("groups_all")),
        app_roles=frozenset(str(r) for r in criteria.get("app_roles") or ()),
        emails=frozenset(str(e).lower() for e in criteria.get("emails") or ()),
        domains=frozenset(str(d).lower().lstrip("@") for d in criteria.get("domains") or ()),
        tenants=frozenset(str(t).lower() for t in criteria.get("tenants") or ()),
        providers=frozenset(str(p).lower() for p in criteria.get("providers") or ()),
        max_age_seconds=int(max_age) * 60 if max_age not in (None, "") else None,
        auth_context=str(criteria["auth_context"]) if criteria.get("auth_context") else None,
    )
    compiled.any_ids = frozenset(g["id"].lower() for g in compiled.groups_any)
    compiled.all_ids = tuple(g["id"].lower() for g in compiled.groups_all)
    return compiled


def compile_document(document: Mapping[str, Any], version: int = 0) -> CompiledPolicy:
    rules = [compile_rule(rule) for rule in document.get("rules") or () if rule.get("enabled", True)]
    hosts = [(normalize_host(str(h.get("host") or "")), str(h.get("default") or "signed_in"))
             for h in document.get("hosts") or ()]
    hosts.sort(key=lambda item: (item[0].startswith("*"), -len(item[0])))
    headers = {normalize_host(str(h.get("host") or "")): tuple((str(name), str(claim)) for name, claim
                                                                in (h.get("headers") or {}).items())
               for h in document.get("hosts") or () if h.get("headers")}
    return CompiledPolicy(version, rules, hosts, headers)


@dataclass
class _Holder:
    """The compiled policy of one app, and until when its version is known to be current."""

    policy: CompiledPolicy | None = None
    fresh_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _holder(app: Flask) -> _Holder:
    holder = app.extensions.get("policies")
    if holder is None:
        holder = app.extensions.setdefault("policies", _Holder())
    return holder


def forget(app: Flask | None = None) -> None:
    """Make the next request ask which version is current (a save calls this)."""
    _holder(app or current_app._get_current_object()).fresh_until = 0.0  # type: ignore[attr-defined]


def compiled_if_fresh(app: Flask) -> CompiledPolicy | None:
    """The compiled policy when its version was confirmed within POLICY_REFRESH_SECONDS (the WSGI fast path)."""
    holder = _holder(app)
    return holder.policy if holder.policy is not None and holder.fresh_until > time.monotonic() else None


def compiled() -> CompiledPolicy:
    """The current version, compiled (inside an app context; asks the database at most once per refresh period)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    holder = _holder(app)
    policy = holder.policy
    if policy is not None and holder.fresh_until > time.monotonic():
        return policy
    with holder.lock:
        number = db.session.scalar(select(func.max(PolicyVersion.number))) or 0
        if holder.policy is None or holder.policy.version != number:
            document: Mapping[str, Any] = {}
            if number:
                document = db.session.scalar(select(PolicyVersion.document).where(PolicyVersion.number == number)) \
                    or {}
            holder.policy = compile_document(document, number)
        holder.fresh_until = time.monotonic() + float(app.config.get("POLICY_REFRESH_SECONDS",
                                                                     DEFAULT_REFRESH_SECONDS))
        return holder.policy


def current_names(decision: Decision) -> Decision:
    """The decision with its groups named as the imported groups name them now (a group renamed in Office 365
    after the rule was saved shows its new name; matching was by id all along)."""
    if not decision.granting_groups:
        return decision
    ids = [group["id"] for group in decision.granting_groups]
    rows = db.session.execute(select(Group.source_group_id, Group.source_group_name)
                              .where(func.lower(Group.source_group_id).in_([i.lower() for i in ids])))
    names = {str(gid).lower(): str(name) for gid, name in rows if gid and name}
    if not names:
        return decision
    groups = tuple({"id": g["id"], "name": names.get(g["id"].lower(), g["name"])} for g in decision.granting_groups)
    return replace(decision, granting_groups=groups, reason=group_reason(decision.criterion, groups))


def explain(facts: RequestFacts, identity: Mapping[str, Any] | None, now: float | None = None
            ) -> tuple[Decision, list[TraceStep]]:
    """What if?: the decision `evaluate` gives, with every enabled rule tried and what it did."""
    trace: list[TraceStep] = []
    decision = current_names(compiled().evaluate(facts, identity, now, trace=trace))
    return decision, trace


def evaluate(facts: RequestFacts, identity: Mapping[str, Any] | None, now: float | None = None) -> Decision:
    """Decide `facts` for `identity` (the session's identity dict; None: not signed in) with the current version;
    groups in a denial named by their current names."""
    return current_names(compiled().evaluate(facts, identity, now))
