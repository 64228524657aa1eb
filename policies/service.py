"""The access policy document: read the current version, validate, save a new version (audited with a readable
diff), list versions, and the group ids the rules need.

The canonical document (what `current()` returns, what is stored and exported) is

    {"hosts": [{"host", "default", "headers"?}],
     "rules": [{"id", "name", "enabled", "host", "paths", "methods", "networks", "action", "criteria"}]}

with every rule key present and `criteria` holding only the criteria given (see docs/internals.md).
Groups are `{id, name}`: matched by id; the name is what people read, refreshed from the imported groups
(`core.models.Group.source_group_*`) so that a group renamed in Office 365 shows its new name.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from core import audit
from core.extensions import db
from core.models import Group
from policies import evaluate
from policies.models import PolicyVersion

TOP_KEYS = ("hosts", "rules")
HOST_KEYS = ("host", "default", "headers")
# What a host may pass upstream in headers of its choosing (`headers: {X-Auth-Request-Roles: roles}`), beside the
# fixed identity headers and the signed assertion: the session's claims, by the names access rules use.
HEADER_CLAIMS = ("roles", "groups", "email", "name", "user", "tid", "provider", "acrs", "auth_time")
FIXED_HEADERS = frozenset(name.lower() for name in (
    "X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Name", "X-Auth-Request-Groups",
    "X-Auth-Request-Groups-Overflow", "X-Auth-Request-Assertion", "X-Accel-Expires", "X-Accel-Redirect",
    "X-Accel-Buffering", "X-Accel-Limit-Rate", "X-Accel-Charset"))
HEADER_NAME = re.compile(r"^X-[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
MAX_HOST_HEADERS = 20
RULE_KEYS = ("id", "name", "enabled", "host", "paths", "methods", "networks", "action", "criteria")
LIST_CRITERIA = ("groups_any", "groups_all", "app_roles", "emails", "domains", "tenants", "providers")
CRITERIA_KEYS = (*LIST_CRITERIA, "max_auth_age_minutes", "auth_context")
ACTIONS = ("allow", "deny", "public")
HOST_DEFAULTS = ("signed_in", "deny")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
RULE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LABEL = r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?"
HOST_NAME = re.compile(rf"^{LABEL}(?:\.{LABEL})*$")
DOMAIN = re.compile(rf"^{LABEL}(?:\.{LABEL})+$")
AUTH_CONTEXT = re.compile(r"^c(?:[1-9]|[1-9][0-9])$")
GROUP_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
MAX_RULES = 2000
MAX_ITEMS = 500
MAX_AGE_MINUTES = 525600
EMPTY: dict[str, Any] = {"hosts": [], "rules": []}


@dataclass(frozen=True)
class FieldError:
    path: str  # e.g. rules[2].paths[0]
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PolicyInvalid(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def new_rule_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "r-" + "".join(secrets.choice(alphabet) for _ in range(6))


# --- reading ---------------------------------------------------------------------------------------------------

def current() -> tuple[int, dict[str, Any]]:
    """(version number, canonical document); (0, empty document) before the first save."""
    row = db.session.scalar(select(PolicyVersion).order_by(PolicyVersion.number.desc()).limit(1))
    if row is None:
        return 0, {"hosts": [], "rules": []}
    return row.number, refresh_group_names(normalize(row.document))


def versions(limit: int = 50) -> list[PolicyVersion]:
    """The latest versions first."""
    return list(db.session.scalars(select(PolicyVersion).order_by(PolicyVersion.number.desc()).limit(limit)))


def version(number: int) -> PolicyVersion | None:
    return db.session.scalar(select(PolicyVersion).where(PolicyVersion.number == number))


def required_group_ids() -> set[str]:
    """Every group any enabled rule names (the ids the gateway must know about)."""
    _, document = current()
    return {group["id"] for rule in document["rules"] if rule["enabled"]
            for kind in ("groups_any", "groups_all") for group in rule["criteria"].get(kind, ())}


def known_groups() -> dict[str, str]:
    """Office 365 group id (lower case) -> display name, from the imported groups."""
    rows = db.session.execute(select(Group.source_group_id, Group.source_group_name)
                              .where(Group.source_group_id.is_not(None)))
    return {str(gid).lower(): str(name) for gid, name in rows if gid and name}


def refresh_group_names(document: dict[str, Any], names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The document with each group's name taken from the imported groups when they know it (a rename shows)."""
    names = known_groups() if names is None else names
    if not names:
        return document
    for rule in document.get("rules") or ():
        for kind in ("groups_any", "groups_all"):
            for group in (rule.get("criteria") or {}).get(kind) or ():
                if isinstance(group, dict) and str(group.get("id", "")).lower() in names:
                    group["name"] = names[str(group["id"]).lower()]
    return document


def resolve_group_references(document: dict[str, Any]) -> list[FieldError]:
    """Turn groups given by name only (a string, or {name} without id) into {id, name} through the imported
    groups; an unknown name is an error at its path. Groups with an id get their current name."""
    names = known_groups()
    by_name: dict[str, list[str]] = {}
    for gid, name in names.items():
        by_name.setdefault(name.lower(), []).append(gid)
    errors: list[FieldError] = []
    rules = document.get("rules") if isinstance(document, dict) else None
    for r_index, rule in enumerate(rules if isinstance(rules, list) else ()):
        criteria = rule.get("criteria") if isinstance(rule, dict) else None
        if not isinstance(criteria, dict):
            continue
        for kind in ("groups_any", "groups_all"):
            items = criteria.get(kind)
            if not isinstance(items, list):
                continue
            for g_index, item in enumerate(items):
                path = f"rules[{r_index}].criteria.{kind}[{g_index}]"
                name = item if isinstance(item, str) else item.get("name") if isinstance(item, dict) and \
                    "id" not in item else None
                if name is None:
                    continue
                found = by_name.get(str(name).strip().lower(), [])
                if len(found) == 1:
                    items[g_index] = {"id": found[0], "name": names[found[0]]}
                elif found:
                    errors.append(FieldError(path, f"group name {name!r} is ambiguous: give its id"))
                else:
                    errors.append(FieldError(path, f"unknown group {name!r}: give its id, or import the group first"))
    refresh_group_names(document, names)
    return errors


# --- validation ------------------------------------------------------------------------------------------------

def _unknown_keys(value: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> list[FieldError]:
    prefix = f"{path}." if path else ""
    return [FieldError(f"{prefix}{key}", f"unknown key {key!r} (expected one of: {', '.join(allowed)})")
            for key in value if key not in allowed]


def _is_text(value: Any, limit: int = 256) -> bool:
    return isinstance(value, str) and 0 < len(value.strip()) <= limit


def valid_host_pattern(value: Any, allow_any: bool = True) -> bool:
    if not isinstance(value, str):
        return False
    host = value.strip().lower().rstrip(".")
    if host == "*":
        return allow_any
    if host.startswith("*."):
        return bool(DOMAIN.fullmatch(host[2:])) or bool(HOST_NAME.fullmatch(host[2:]))
    if HOST_NAME.fullmatch(host):
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def path_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "a path must be text starting with /"
    if not value.startswith("/"):
        return "a path must start with /"
    if len(value) > 2048:
        return "a path has at most 2,048 characters"
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        return "a path has no spaces or control characters"
    if "***" in value:
        return "a glob has * (within a segment) or ** (across segments), not ***"
    if "#" in value:
        return "a path has no # fragment"
    return None


def _check_list(value: Any, path: str, errors: list[FieldError]) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(FieldError(path, "must be a list"))
        return []
    if len(value) > MAX_ITEMS:
        errors.append(FieldError(path, f"at most {MAX_ITEMS} entries"))
    return value


def _validate_criteria(criteria: Any, path: str, action: str, errors: list[FieldError]) -> None:
    if criteria is None:
        return
    if not isinstance(criteria, dict):
        errors.append(FieldError(path, "must be a mapping of criteria"))
        return
    errors.extend(_unknown_keys(criteria, CRITERIA_KEYS, path))
    given = [key for key in CRITERIA_KEYS if criteria.get(key) not in (None, [], "")]
    if action == "public" and given:
        errors.append(FieldError(path, "a public rule needs no sign-in, so it takes no criteria"))
    for kind in ("groups_any", "groups_all"):
        for index, group in enumerate(_check_list(criteria.get(kind), f"{path}.{kind}", errors)):
            where = f"{path}.{kind}[{index}]"
            if not isinstance(group, dict):
                errors.append(FieldError(where, "a group is {id, name}"))
                continue
            errors.extend(_unknown_keys(group, ("id", "name"), where))
            if not isinstance(group.get("id"), str) or not GROUP_ID.fullmatch(group["id"]):
                errors.append(FieldError(f"{where}.id", "a group needs its object id"))
            if "name" in group and not (group["name"] is None or isinstance(group["name"], str)):
                errors.append(FieldError(f"{where}.name", "must be text"))
    for kind in ("app_roles", "tenants", "providers"):
        for index, item in enumerate(_check_list(criteria.get(kind), f"{path}.{kind}", errors)):
            if not _is_text(item):
                errors.append(FieldError(f"{path}.{kind}[{index}]", "must be non-empty text"))
    for index, item in enumerate(_check_list(criteria.get("emails"), f"{path}.emails", errors)):
        if not isinstance(item, str) or not EMAIL.fullmatch(item.strip()):
            errors.append(FieldError(f"{path}.emails[{index}]", "must be an e-mail address"))
    for index, item in enumerate(_check_list(criteria.get("domains"), f"{path}.domains", errors)):
        if not isinstance(item, str) or not DOMAIN.fullmatch(item.strip().lower().lstrip("@")):
            errors.append(FieldError(f"{path}.domains[{index}]", "must be a domain name such as example.com"))
    age = criteria.get("max_auth_age_minutes")
    if age is not None and (isinstance(age, bool) or not isinstance(age, int) or not 1 <= age <= MAX_AGE_MINUTES):
        errors.append(FieldError(f"{path}.max_auth_age_minutes",
                                 f"must be a whole number of minutes from 1 to {MAX_AGE_MINUTES}"))
    context = criteria.get("auth_context")
    if context not in (None, "") and (not isinstance(context, str) or not AUTH_CONTEXT.fullmatch(context)):
        errors.append(FieldError(f"{path}.auth_context", "must be an authentication context c1 to c99"))


def _validate_headers(headers: Any, path: str, errors: list[FieldError]) -> None:
    """`{header name: claim}`: names X-..., not one the gateway sets itself, each once; claims from HEADER_CLAIMS."""
    if headers is None:
        return
    if not isinstance(headers, dict):
        errors.append(FieldError(path, "headers is a mapping of header name to claim, e.g. "
                                       "{X-Auth-Request-Roles: roles}"))
        return
    if len(headers) > MAX_HOST_HEADERS:
        errors.append(FieldError(path, f"at most {MAX_HOST_HEADERS} headers per host"))
    seen: set[str] = set()
    for name, claim in headers.items():
        where = f"{path}.{name}"
        if not isinstance(name, str) or not HEADER_NAME.fullmatch(name.strip()):
            errors.append(FieldError(where, "a header name starts with X- and has only letters, digits and -"))
            continue
        lowered = name.strip().lower()
        if lowered in FIXED_HEADERS:
            errors.append(FieldError(where, "the gateway sets this header itself; choose another name"))
        elif lowered in seen:
            errors.append(FieldError(where, "this header is listed twice"))
        seen.add(lowered)
        if claim not in HEADER_CLAIMS:
            errors.append(FieldError(where, f"the claim must be one of: {', '.join(HEADER_CLAIMS)}"))


def _validate_rule(rule: Any, path: str, errors: list[FieldError]) -> None:
    if not isinstance(rule, dict):
        errors.append(FieldError(path, "a rule is a mapping"))
        return
    errors.extend(_unknown_keys(rule, RULE_KEYS, path))
    if "id" in rule and rule["id"] is not None and (not isinstance(rule["id"], str) or not RULE_ID.fullmatch(
            rule["id"])):
        errors.append(FieldError(f"{path}.id", "letters, digits, - and _ only (at most 64)"))
    if not _is_text(rule.get("name")):
        errors.append(FieldError(f"{path}.name", "a rule needs a name (at most 256 characters)"))
    if "enabled" in rule and not isinstance(rule["enabled"], bool):
        errors.append(FieldError(f"{path}.enabled", "must be true or false"))
    if "host" in rule and not valid_host_pattern(rule["host"]):
        errors.append(FieldError(f"{path}.host", "must be a host name, *.example.com, or * (any host)"))
    for index, item in enumerate(_check_list(rule.get("paths"), f"{path}.paths", errors)):
        problem = path_problem(item)
        if problem:
            errors.append(FieldError(f"{path}.paths[{index}]", problem))
    for index, item in enumerate(_check_list(rule.get("methods"), f"{path}.methods", errors)):
        if not isinstance(item, str) or item.strip().upper() not in METHODS:
            errors.append(FieldError(f"{path}.methods[{index}]", f"must be one of {', '.join(METHODS)}"))
    for index, item in enumerate(_check_list(rule.get("networks"), f"{path}.networks", errors)):
        try:
            ipaddress.ip_network(str(item).strip(), strict=False)
            if not isinstance(item, str):
                raise ValueError
        except ValueError:
            errors.append(FieldError(f"{path}.networks[{index}]", "must be an IP network in CIDR form, e.g. "
                                                                  "10.0.0.0/8"))
    action = rule.get("action", "allow")
    if action not in ACTIONS:
        errors.append(FieldError(f"{path}.action", "must be allow, deny or public"))
    _validate_criteria(rule.get("criteria"), f"{path}.criteria", str(action), errors)


def validate(document: Any) -> list[FieldError]:
    """Every problem with `document`, each at its path (`rules[2].paths[0]`); [] when it can be saved."""
    if not isinstance(document, dict):
        return [FieldError("", "the document is a mapping with hosts and rules")]
    errors = _unknown_keys(document, TOP_KEYS, "")
    seen_hosts: set[str] = set()
    for index, entry in enumerate(_check_list(document.get("hosts"), "hosts", errors)):
        path = f"hosts[{index}]"
        if not isinstance(entry, dict):
            errors.append(FieldError(path, "a host entry is {host, default}"))
            continue
        errors.extend(_unknown_keys(entry, HOST_KEYS, path))
        if not valid_host_pattern(entry.get("host"), allow_any=False):
            errors.append(FieldError(f"{path}.host", "must be a host name or *.example.com"))
        elif entry["host"].strip().lower().rstrip(".") in seen_hosts:
            errors.append(FieldError(f"{path}.host", "this host is listed twice"))
        else:
            seen_hosts.add(entry["host"].strip().lower().rstrip("."))
        if entry.get("default", "signed_in") not in HOST_DEFAULTS:
            errors.append(FieldError(f"{path}.default", "must be signed_in or deny"))
        _validate_headers(entry.get("headers"), f"{path}.headers", errors)
    rules = document.get("rules")
    if isinstance(rules, list) and len(rules) > MAX_RULES:
        errors.append(FieldError("rules", f"at most {MAX_RULES} rules"))
    seen_ids: set[str] = set()
    for index, rule in enumerate(rules if isinstance(rules, list) else _check_list(rules, "rules", errors)):
        _validate_rule(rule, f"rules[{index}]", errors)
        rule_id = rule.get("id") if isinstance(rule, dict) else None
        if isinstance(rule_id, str) and rule_id:
            if rule_id in seen_ids:
                errors.append(FieldError(f"rules[{index}].id", "two rules have this id"))
            seen_ids.add(rule_id)
    return errors


# --- canonical form --------------------------------------------------------------------------------------------

def _strings(value: Any, lower: bool = False, upper: bool = False) -> list[str]:
    out = []
    for item in value or ():
        text = str(item).strip()
        text = text.lower() if lower else text.upper() if upper else text
        if text and text not in out:
            out.append(text)
    return out


def normalize(document: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form of a valid document (every rule key present, criteria only when given)."""
    hosts = []
    for entry in document.get("hosts") or ():
        host = {"host": str(entry["host"]).strip().lower().rstrip("."),
                "default": str(entry.get("default") or "signed_in")}
        headers = {str(name).strip(): str(claim) for name, claim in (entry.get("headers") or {}).items()}
        if headers:  # only when given: documents saved before headers existed read the same
            host["headers"] = headers
        hosts.append(host)
    rules = []
    for rule in document.get("rules") or ():
        criteria_in = rule.get("criteria") or {}
        criteria: dict[str, Any] = {}
        for kind in ("groups_any", "groups_all"):
            groups = []
            for group in criteria_in.get(kind) or ():
                gid = str(group["id"]).strip()
                if all(g["id"].lower() != gid.lower() for g in groups):
                    groups.append({"id": gid, "name": str(group.get("name") or gid).strip()})
            if groups:
                criteria[kind] = groups
        for kind, lower in (("app_roles", False), ("emails", True), ("domains", True), ("tenants", True),
                            ("providers", False)):
            values = _strings(criteria_in.get(kind), lower=lower)
            if kind == "domains":
                values = [v.lstrip("@") for v in values]
            if values:
                criteria[kind] = values
        if criteria_in.get("max_auth_age_minutes") is not None:
            criteria["max_auth_age_minutes"] = int(criteria_in["max_auth_age_minutes"])
        if criteria_in.get("auth_context"):
            criteria["auth_context"] = str(criteria_in["auth_context"])
        rules.append({
            "id": str(rule.get("id") or new_rule_id()),
            "name": str(rule["name"]).strip(),
            "enabled": bool(rule.get("enabled", True)),
            "host": str(rule.get("host") or "*").strip().lower().rstrip(".") or "*",
            "paths": _strings(rule.get("paths")),
            "methods": _strings(rule.get("methods"), upper=True),
            "networks": [str(ipaddress.ip_network(str(n).strip(), strict=False)) for n in rule.get("networks") or ()],
            "action": str(rule.get("action") or "allow"),
            "criteria": criteria,
        })
    return {"hosts": hosts, "rules": rules}


# --- diff ------------------------------------------------------------------------------------------------------

def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, dict) and "id" in value:
        return str(value.get("name") or value["id"])
    if value is None or value == "":
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _show_headers(headers: Mapping[str, str]) -> str:
    return "[" + ", ".join(f"{name}: {claim}" for name, claim in headers.items()) + "]" if headers else "(none)"


def _moved(old: list[str], new: list[str]) -> set[str]:
    """The ids that moved: repeatedly the one displaced farthest (ties: the one moved up) until the orders agree."""
    old, new = list(old), list(new)
    moved: set[str] = set()
    while old != new:
        positions = {rule_id: index for index, rule_id in enumerate(new)}
        rule_id = max(old, key=lambda r: (abs(old.index(r) - positions[r]), old.index(r) - positions[r]))
        moved.add(rule_id)
        old.remove(rule_id)
        new.remove(rule_id)
    return moved


def diff(old_doc: Mapping[str, Any], new_doc: Mapping[str, Any]) -> list[str]:
    """What changed, in sentences: "rule 'Finance reports': paths [/a] -> [/a, /b]", "added rule 'X' at 2",
    "moved rule 'X' from 3 to 1", "host app.example.com: default signed_in -> deny"."""
    old, new = normalize(old_doc), normalize(new_doc)
    lines: list[str] = []
    old_hosts = {h["host"]: h["default"] for h in old["hosts"]}
    new_hosts = {h["host"]: h["default"] for h in new["hosts"]}
    for host, default in new_hosts.items():
        if host not in old_hosts:
            lines.append(f"added host {host} (default {default})")
        elif old_hosts[host] != default:
            lines.append(f"host {host}: default {old_hosts[host]} -> {default}")
    lines.extend(f"removed host {host}" for host in old_hosts if host not in new_hosts)
    old_headers = {h["host"]: h.get("headers") or {} for h in old["hosts"]}
    for entry in new["hosts"]:
        was, now = old_headers.get(entry["host"], {}), entry.get("headers") or {}
        if was != now:
            lines.append(f"host {entry['host']}: headers {_show_headers(was)} -> {_show_headers(now)}")
    old_rules = {r["id"]: (index, r) for index, r in enumerate(old["rules"], 1)}
    new_rules = {r["id"]: (index, r) for index, r in enumerate(new["rules"], 1)}
    common_old = [r["id"] for r in old["rules"] if r["id"] in new_rules]
    common_new = [r["id"] for r in new["rules"] if r["id"] in old_rules]
    moved = _moved(common_old, common_new)
    for rule_id, (index, rule) in new_rules.items():
        if rule_id not in old_rules:
            lines.append(f"added rule '{rule['name']}' at {index}" + ("" if rule["enabled"] else " (disabled)"))
            continue
        old_index, before = old_rules[rule_id]
        label = before["name"]
        if before["name"] != rule["name"]:
            lines.append(f"renamed rule '{before['name']}' to '{rule['name']}'")
            label = rule["name"]
        if rule_id in moved:
            lines.append(f"moved rule '{label}' from {old_index} to {index}")
        if before["enabled"] != rule["enabled"]:
            lines.append(f"{'enabled' if rule['enabled'] else 'disabled'} rule '{label}'")
        for key in ("host", "paths", "methods", "networks", "action"):
            if before[key] != rule[key]:
                lines.append(f"rule '{label}': {key} {_show(before[key])} -> {_show(rule[key])}")
        for key in CRITERIA_KEYS:
            was, now = before["criteria"].get(key), rule["criteria"].get(key)
            if key in ("groups_any", "groups_all"):
                was_ids = [g["id"].lower() for g in was or ()]
                now_ids = [g["id"].lower() for g in now or ()]
                if was_ids == now_ids:
                    continue
            elif was == now:
                continue
            lines.append(f"rule '{label}': {key} {_show(was)} -> {_show(now)}")
    lines.extend(f"removed rule '{rule['name']}'" for rule_id, (_, rule) in old_rules.items()
                 if rule_id not in new_rules)
    return lines


# --- saving ----------------------------------------------------------------------------------------------------

def prepare(document: Any) -> dict[str, Any]:
    """The canonical document to save, or PolicyInvalid with every problem."""
    errors = validate(document)
    if errors:
        raise PolicyInvalid(errors)
    return normalize(document)


def save(document: Any, actor: str, note: str = "") -> int:
    """Validate and store `document` as the next version, audited with its diff; commits. Returns the number."""
    canonical = prepare(document)
    number, previous = current()
    changes = diff(previous, canonical)
    row = PolicyVersion(number=number + 1, document=canonical, created_by=audit.storable(actor or "system", 320),
                        note=audit.storable(note or "", 512))
    db.session.add(row)
    audit.record("policies.change", f"access policies version {row.number}", actor=actor or None,
                 summary="access policies changed", changes=changes, note=note, version=row.number,
                 rules=len(canonical["rules"]))
    db.session.commit()
    evaluate.forget()
    return row.number


def latest_number() -> int:
    return db.session.scalar(select(func.max(PolicyVersion.number))) or 0
