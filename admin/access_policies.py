"""Administration > Access policies (Administrator): the rules in order, each as a sentence; a rule form showing
only the fields that apply (add, edit, duplicate); move up/down, enable/disable and delete as plain forms (no script
needed); the per-host defaults; the version history with its readable diffs; and the group picker's search (Office
365 groups by name, through the ready Office 365 datasource).

Every change reads the current document, changes it and saves it as a new version through
`policies.service.save` (validated there, audited with its diff). The engine's problems come back as FieldErrors at
paths like `rules[2].paths[0]`; they are shown beside the field they name, the form keeping what was typed.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.wrappers import Response
from wtforms import BooleanField, RadioField, StringField, TextAreaField
from wtforms.validators import Length, Optional

from admin import bp
from admin.fields import AsciiIntegerField, CheckboxChoices, options
from core import audit
from core.access import roles_required
from core.converters import int_arg, parse_int
from core.extensions import db
from core.models import Datasource, Role, User
from datasources.service import Caller, page_deadline, run
from office365 import operations as ops
from office365.errors import FieldError as GraphFieldError
from office365.errors import Office365Error, ReauthorizationRequired, Throttled
from policies import service
from policies.cli import identity_of
from policies.evaluate import RequestFacts, explain
from policies.service import MAX_AGE_MINUTES, METHODS, FieldError, PolicyInvalid
from sso.models import SsoProvider

ACTION_LABELS = {"allow": "Allow", "deny": "Deny", "public": "Public (no sign-in)"}
DEFAULT_LABELS = {"signed_in": "Any signed-in user", "deny": "Deny"}
GROUP_KINDS = ("groups_any", "groups_all")
# Rule form fields holding lists typed as text: the separator people use, and how an item is named in a message.
LIST_FIELDS = {"paths": ("line", "Line"), "networks": ("line", "Line"), "emails": ("line", "Line"),
               "app_roles": ("comma", "Entry"), "domains": ("comma", "Entry"), "tenants": ("comma", "Entry"),
               "providers": ("comma", "Entry"), "methods": ("comma", "Method")}
CRITERIA_FIELDS = ("app_roles", "emails", "domains", "tenants", "providers", "max_auth_age_minutes", "auth_context")
FORM_FIELDS = ("name", "enabled", "action", "host", "paths", "methods", "networks", *CRITERIA_FIELDS)
PATH_OF_ERROR = re.compile(r"^rules\[(\d+)\](?:\.criteria)?(?:\.(\w+))?(?:\[(\d+)\])?")
HOST_ERROR = re.compile(r"^hosts\[(\d+)\](?:\.(\w+))?")
GROUP_LABEL_SEPARATOR = "|"
PICKER_RESULTS = 10
WHAT_IF_FIELDS = ("user", "method", "url", "ip", "groups", "roles", "acrs", "provider", "minutes")


class RuleForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=256)], description="What people call this rule.")
    enabled = BooleanField("Enabled", default=True)
    action = RadioField("Decision", default="allow", choices=options(ACTION_LABELS.items()))
    host = StringField("Host", default="*", validators=[Length(max=255)],
                       description="app.example.com, *.example.com for its subdomains, or * for any host.")
    paths = TextAreaField("Paths", render_kw={"rows": 3},
                          description="One per line: a prefix (/reports/) or a glob (/api/*.json, /docs/**). "
                                      "Empty: every path.")
    methods = CheckboxChoices("Methods", choices=options((m, m) for m in METHODS),
                              description="None ticked: every method.")
    networks = TextAreaField("Source networks", render_kw={"rows": 2},
                             description="One per line, in CIDR form (10.0.0.0/8). Empty: from anywhere.")
    app_roles = StringField("App roles", description="Comma-separated, from the ID token's roles claim: all are "
                                                    "needed.")
    emails = TextAreaField("E-mail addresses", render_kw={"rows": 2}, description="One per line.")
    domains = StringField("E-mail domains", description="Comma-separated, e.g. contoso.example.")
    tenants = StringField("Tenants", description="Comma-separated tenant ids (tid).")
    providers = StringField("Sign-in providers", description="Comma-separated provider names.")
    max_auth_age_minutes = AsciiIntegerField(
        "Signed in within (minutes)", validators=[Optional()],
        description="Older sign-ins are asked to sign in again (step-up).")
    auth_context = StringField("Entra authentication context", validators=[Length(max=64)],
                               description="c1 to c99: the user is sent through one more sign-in that satisfies "
                                           "it (Conditional Access).")
    note = StringField("Note for the history", validators=[Optional(), Length(max=500)],
                       description="Optional: why this change.")


class ActionForm(FlaskForm):
    """CSRF only: move, enable/disable, duplicate, delete."""


class HostsForm(FlaskForm):
    """CSRF only: the host rows are read from the request as lists (host, default, remove)."""


# --- reading the document --------------------------------------------------------------------------------------

def _current() -> tuple[int, dict[str, Any]]:
    number, document = service.current()
    return number, copy.deepcopy(document)


def _rule_index(document: Mapping[str, Any], rule_id: str) -> int:
    for index, rule in enumerate(document["rules"]):
        if rule["id"] == rule_id:
            return index
    abort(404)


def _digest(rule: Mapping[str, Any] | None) -> str:
    return hashlib.sha256(json.dumps(rule, sort_keys=True, default=str).encode()).hexdigest()[:16] if rule else ""


def _split(text: str | None, how: str) -> list[str]:
    parts = re.split(r"[\r\n]+" if how == "line" else r"[,\r\n]+", text or "")
    return [part.strip() for part in parts if part.strip()]


def _join(values: Iterable[str], how: str) -> str:
    return ("\n" if how == "line" else ", ").join(values)


# --- sentences -------------------------------------------------------------------------------------------------

def _names(groups: Iterable[Mapping[str, str]]) -> list[str]:
    return [str(g.get("name") or g.get("id")) for g in groups]


def _either(items: list[str], word: str = "or") -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {word} " + items[-1]


def criteria_phrases(criteria: Mapping[str, Any]) -> list[str]:
    """Each criterion in words: "members of Finance Approvers", "with app role Reader", ..."""
    out = []
    if criteria.get("groups_any"):
        names = _names(criteria["groups_any"])
        out.append("members of " + (names[0] if len(names) == 1 else "any of " + _either(names)))
    if criteria.get("groups_all"):
        names = _names(criteria["groups_all"])
        out.append("members of " + (names[0] if len(names) == 1 else "all of " + _either(names, "and")))
    if criteria.get("app_roles"):
        roles = criteria["app_roles"]
        out.append(f"with app role{'s' if len(roles) > 1 else ''} {_either(roles, 'and')}")
    if criteria.get("emails"):
        out.append("signed in as " + _either(criteria["emails"]))
    if criteria.get("domains"):
        out.append("with an e-mail at " + _either(criteria["domains"]))
    if criteria.get("tenants"):
        out.append("of tenant " + _either(criteria["tenants"]))
    if criteria.get("providers"):
        out.append("signed in with " + _either(criteria["providers"]))
    if criteria.get("max_auth_age_minutes"):
        out.append(f"signed in within {criteria['max_auth_age_minutes']} min")
    if criteria.get("auth_context"):
        out.append(f"with authentication context {criteria['auth_context']}")
    return out


@dataclass(frozen=True)
class Sentence:
    """A rule in words: what it matches ("GET, POST finance.example.com /reports/*") and what it decides."""

    matches: str
    decides: str

    def __str__(self) -> str:
        return f"{self.matches} — {self.decides}"


def sentence(rule: Mapping[str, Any]) -> Sentence:
    methods = ", ".join(rule.get("methods") or ()) or "Any method"
    host = "any host" if rule.get("host") in (None, "", "*") else rule["host"]
    paths = ", ".join(rule.get("paths") or ()) or "every path"
    matches = f"{methods} {host} {paths}"
    if rule.get("networks"):
        matches += " from " + ", ".join(rule["networks"])
    phrases = criteria_phrases(rule.get("criteria") or {})
    action = rule.get("action", "allow")
    if action == "public":
        decides = "public: no sign-in needed"
    elif action == "deny":
        decides = "deny " + (" and ".join(phrases) if phrases else "everyone")
    else:
        decides = "allow " + (" and ".join(phrases) if phrases else "anyone signed in")
    return Sentence(matches, decides)


# --- the group picker ------------------------------------------------------------------------------------------

def ready_datasources() -> list[Datasource]:
    """Office 365 datasources that can be asked for groups: ready ones, the sign-in (SSO) ones first."""
    rows = db.session.scalars(select(Datasource).where(Datasource.kind == "office365",
                                                       Datasource.status == Datasource.READY)
                              .order_by(Datasource.sso_enabled.desc(), func.lower(Datasource.name)))
    return list(rows)


def _picker_datasource(datasource_id: int | None = None) -> Datasource | None:
    found = ready_datasources()
    if datasource_id:
        found = [ds for ds in found if ds.id == datasource_id]
    return found[0] if found else None


def _graph_message(exc: Office365Error, ds: Datasource) -> tuple[int, str, str]:
    """(status, code, message) for a Graph failure: never a 500, always what to do."""
    if isinstance(exc, Throttled):
        return 503, "throttled", ("Microsoft Graph is throttling requests right now: wait a minute and type again. "
                                  "Groups already chosen are kept.")
    if isinstance(exc, ReauthorizationRequired):
        return 409, "reauthorization_required", (f'The data source "{ds.name}" must be re-authorized before groups '
                                                  "can be searched (Administration > Data sources).")
    if isinstance(exc, GraphFieldError):
        return 400, "invalid_query", exc.message
    return 502, exc.error_code, f"Could not search groups in {ds.name}: {exc}"


def search_groups(ds: Datasource, text: str, size: int = PICKER_RESULTS) -> list[dict[str, str]]:
    """Groups whose name, mail or nickname starts with `text` (Graph Find Groups); Office365Error on failure."""
    page = run(ds, Caller(current_user._get_current_object()), "find_groups", "", {"q": text[:64]},
               lambda access: ops.find_groups(access, text, mode="prefix", page_size=size,
                                              with_member_count=False),
               deadline=page_deadline())
    return [{"id": group.id, "name": group.display_name, "detail": group.mail or group.type.label}
            for group in page.groups]


@bp.get("/access-policies/groups")
@roles_required(Role.ADMINISTRATOR)
def access_policy_groups() -> tuple[Response, int]:
    """The picker's search: `?q=fin[&datasource=ID]` -> {"groups": [{id, name, detail}], "datasource"}; a clear
    message (and an error status) when no datasource is ready or Graph fails or throttles."""
    text = (request.args.get("q") or "").strip()
    ds = _picker_datasource(int_arg("datasource", 0, 0, 2**31 - 1) or None)
    if ds is None:
        return jsonify(error={"code": "no_datasource", "message": (
            "No Office 365 data source is ready, so groups cannot be searched: add one and authorize it "
            "(Administration > Data sources).")}), 409
    if not text:
        return jsonify(groups=[], datasource=ds.name), 200
    try:
        groups = search_groups(ds, text)
    except Office365Error as exc:
        status, code, message = _graph_message(exc, ds)
        return jsonify(error={"code": code, "message": message}), status
    return jsonify(groups=groups, datasource=ds.name), 200


def _resolve_typed_group(text: str) -> tuple[dict[str, str] | None, str]:
    """A group typed by name without the picker (no script): the one group named exactly so, else a message."""
    ds = _picker_datasource()
    if ds is None:
        return None, (f'"{text}" was not looked up: no Office 365 data source is ready to find groups by name.')
    try:
        found = search_groups(ds, text, size=25)
    except Office365Error as exc:
        return None, _graph_message(exc, ds)[2]
    exact = [g for g in found if g["name"].strip().lower() == text.strip().lower()]
    if len(exact) == 1:
        return {"id": exact[0]["id"], "name": exact[0]["name"]}, ""
    if exact:
        return None, f'Several groups are named "{text}": pick the one you mean from the list.'
    close = ", ".join(g["name"] for g in found[:5])
    return None, f'No group is named "{text}".' + (f" Groups starting so: {close}." if close else "")


# --- the rule form <-> a rule ----------------------------------------------------------------------------------

@dataclass
class GroupField:
    """A group criterion in the form: the chosen groups (ticked boxes) and its messages."""

    kind: str
    chosen: list[dict[str, str]] = field(default_factory=list)
    typed: str = ""
    errors: list[str] = field(default_factory=list)


def _group_fields(criteria: Mapping[str, Any]) -> dict[str, GroupField]:
    return {kind: GroupField(kind, [{"id": g["id"], "name": g.get("name") or g["id"]}
                                    for g in criteria.get(kind) or ()]) for kind in GROUP_KINDS}


def _posted_groups() -> dict[str, GroupField]:
    labels = {}
    for value in request.form.getlist("group_label"):
        gid, _, name = value.partition(GROUP_LABEL_SEPARATOR)
        labels[gid] = name or gid
    fields = {}
    for kind in GROUP_KINDS:
        chosen = []
        for gid in request.form.getlist(kind):
            if gid and all(g["id"] != gid for g in chosen):
                chosen.append({"id": gid, "name": labels.get(gid, gid)})
        fields[kind] = GroupField(kind, chosen, (request.form.get(f"{kind}_text") or "").strip())
    return fields


def form_from_rule(rule: Mapping[str, Any], note: str = "") -> RuleForm:
    criteria = rule.get("criteria") or {}
    return RuleForm(formdata=None, data={
        "name": rule.get("name", ""), "enabled": rule.get("enabled", True), "action": rule.get("action", "allow"),
        "host": rule.get("host", "*"), "paths": _join(rule.get("paths") or (), "line"),
        "methods": list(rule.get("methods") or ()), "networks": _join(rule.get("networks") or (), "line"),
        "app_roles": _join(criteria.get("app_roles") or (), "comma"),
        "emails": _join(criteria.get("emails") or (), "line"),
        "domains": _join(criteria.get("domains") or (), "comma"),
        "tenants": _join(criteria.get("tenants") or (), "comma"),
        "providers": _join(criteria.get("providers") or (), "comma"),
        "max_auth_age_minutes": criteria.get("max_auth_age_minutes"),
        "auth_context": criteria.get("auth_context") or "", "note": note})


def rule_from_form(form: RuleForm, groups: Mapping[str, GroupField], rule_id: str) -> dict[str, Any]:
    """The rule as typed. Criteria are kept only for allow and deny rules (a public rule has none)."""
    action = form.action.data if form.action.data in ACTION_LABELS else "allow"
    criteria: dict[str, Any] = {}
    if action != "public":
        for kind in GROUP_KINDS:
            if groups[kind].chosen:
                criteria[kind] = [dict(g) for g in groups[kind].chosen]
        for name in ("app_roles", "emails", "domains", "tenants", "providers"):
            values = _split(getattr(form, name).data, LIST_FIELDS[name][0])
            if values:
                criteria[name] = values
        if form.max_auth_age_minutes.data is not None:
            criteria["max_auth_age_minutes"] = form.max_auth_age_minutes.data
        context = (form.auth_context.data or "").strip().lower()
        if context:
            criteria["auth_context"] = context
    return {"id": rule_id, "name": (form.name.data or "").strip(), "enabled": bool(form.enabled.data),
            "host": (form.host.data or "").strip() or "*", "paths": _split(form.paths.data, "line"),
            "methods": [m for m in form.methods.data or () if m in METHODS],
            "networks": _split(form.networks.data, "line"), "action": action, "criteria": criteria}


def _message(name: str, item: str | None, message: str) -> str:
    message = message[:1].upper() + message[1:]
    if item is None or name in GROUP_KINDS:
        return message if item is None else f"Group {int(item) + 1}: {message}"
    return f"{LIST_FIELDS.get(name, ('', 'Entry'))[1]} {int(item) + 1}: {message}"


def place_errors(errors: Iterable[FieldError], index: int, form: RuleForm,
                 groups: Mapping[str, GroupField]) -> list[str]:
    """Put each of the engine's problems with rule `index` beside its field (unless the form already said what is
    wrong there); what names no field comes back."""
    general = []
    said = {name for name in FORM_FIELDS if getattr(form, name).errors}
    for error in errors:
        match = PATH_OF_ERROR.match(error.path)
        if match is None or int(match.group(1)) != index:
            general.append(str(error))
            continue
        name, item = match.group(2), match.group(3)
        if name in GROUP_KINDS:
            groups[name].errors.append(_message(name, item, error.message))
        elif name in said:
            continue
        elif name and name in FORM_FIELDS:
            getattr(form, name).errors = [*getattr(form, name).errors, _message(name, item, error.message)]
        else:  # the rule as a whole (its id, criteria on a public rule)
            general.append(error.message[:1].upper() + error.message[1:])
    return general


def _form_problems(form: RuleForm) -> None:
    """What the form can tell before the engine sees the rule."""
    if not (form.name.data or "").strip():
        form.name.errors = [*form.name.errors, "Give the rule a name."]
    age = form.max_auth_age_minutes.data
    if age is not None and not 1 <= age <= MAX_AGE_MINUTES:
        form.max_auth_age_minutes.errors = [*form.max_auth_age_minutes.errors,
                                            f"Enter a whole number of minutes from 1 to {MAX_AGE_MINUTES:,}."]
        form.max_auth_age_minutes.data = None


def _provider_names() -> list[str]:
    return list(db.session.scalars(select(SsoProvider.name).order_by(SsoProvider.name)))


def _render_form(form: RuleForm, groups: Mapping[str, GroupField], *, rule_id: str | None, position: int,
                 digest: str, general: list[str] | None = None, status: int = 200) -> tuple[str, int]:
    datasources = ready_datasources()
    names = [rule["name"] for rule in service.current()[1]["rules"]] if rule_id is None else []
    return render_template("admin/access_policies/form.html", form=form, groups=groups, rule_id=rule_id, names=names,
                           position=position, digest=digest, general=general or [], datasources=datasources,
                           providers=_provider_names(),
                           criteria_open=any(getattr(form, n).data for n in CRITERIA_FIELDS) or any(
                               getattr(form, n).errors for n in CRITERIA_FIELDS)), status


def _actor() -> str:
    return audit.current_actor() or current_user.email


def _save(document: dict[str, Any], note: str = "") -> tuple[int | None, list[FieldError]]:
    try:
        return service.save(document, _actor(), note), []
    except PolicyInvalid as exc:
        db.session.rollback()
        return None, exc.errors


# --- pages -----------------------------------------------------------------------------------------------------

@bp.get("/access-policies")
@roles_required(Role.ADMINISTRATOR)
def access_policies() -> str:
    number, document = service.current()
    rules = [(rule, sentence(rule)) for rule in document["rules"]]
    return render_template("admin/access_policies/list.html", number=number, rules=rules,
                           hosts=document["hosts"], default_labels=DEFAULT_LABELS, form=ActionForm(),
                           header_lines=header_lines, header_claims=service.HEADER_CLAIMS,
                           hosts_form=HostsForm(), host_errors={}, general_host_errors=[],
                           datasources=ready_datasources())


@bp.route("/access-policies/new-rule", methods=["GET", "POST"])
@roles_required(Role.ADMINISTRATOR)
def access_policy_rule_new() -> Response | tuple[str, int]:
    _, document = _current()
    source_id = (request.args.get("copy") or "").strip()
    if request.method == "GET":
        rule: dict[str, Any] = {"name": "", "enabled": True, "action": "allow", "host": "*", "criteria": {}}
        position = len(document["rules"]) + 1
        if source_id:  # a copy to change before saving it, placed below its original
            position = _rule_index(document, source_id) + 2
            rule = copy.deepcopy(document["rules"][position - 2])
            rule["name"] = f"{rule['name']} (copy)"
        return _render_form(form_from_rule(rule), _group_fields(rule.get("criteria") or {}), rule_id=None,
                            position=position, digest="")
    return _submit(document, None)


@bp.route("/access-policies/rules/<rule_id>", methods=["GET", "POST"])
@roles_required(Role.ADMINISTRATOR)
def access_policy_rule(rule_id: str) -> Response | tuple[str, int]:
    _, document = _current()
    index = _rule_index(document, rule_id)
    rule = document["rules"][index]
    if request.method == "GET":
        return _render_form(form_from_rule(rule), _group_fields(rule["criteria"]), rule_id=rule_id,
                            position=index + 1, digest=_digest(rule))
    return _submit(document, rule_id)


def _submit(document: dict[str, Any], rule_id: str | None) -> Response | tuple[str, int]:
    """Save the rule form (new when `rule_id` is None), or show it again as typed with each problem beside its
    field."""
    form = RuleForm()
    groups = _posted_groups()
    if rule_id is None:  # where the new rule goes: before the rule at `place` (1-based), or last
        place = parse_int(request.form.get("place", ""), 1, len(document["rules"]) + 1)
        index = len(document["rules"]) if place is None else place - 1
    else:
        index = _rule_index(document, rule_id)
    digest = request.form.get("digest", "")
    general: list[str] = []
    form.validate_on_submit()
    _form_problems(form)
    if (form.action.data or "allow") != "public":
        for picked in groups.values():
            if picked.typed:
                found, problem = _resolve_typed_group(picked.typed)
                if found is None:
                    picked.errors.append(problem)
                elif all(g["id"] != found["id"] for g in picked.chosen):
                    picked.chosen.append(found)
                    picked.typed = ""
                else:
                    picked.typed = ""
    rule = rule_from_form(form, groups, rule_id or service.new_rule_id())
    if rule_id is not None:
        stored = document["rules"][index]
        if digest and digest != _digest(stored):
            general.append("Someone changed this rule since you opened it. Your version is below: check it and "
                           "save again to replace theirs.")
            digest = _digest(stored)
        document["rules"][index] = rule
    else:
        document["rules"].insert(index, rule)
    general += place_errors(service.validate(document), index, form, groups)
    if general or any(g.errors for g in groups.values()) or any(f.errors for f in form):
        flash("The rule was not saved: correct the marked fields.", "danger")
        return _render_form(form, groups, rule_id=rule_id, position=index + 1, digest=digest, general=general,
                            status=400)
    number, problems = _save(document, form.note.data or "")
    if problems:
        general = place_errors(problems, index, form, groups)
        flash("The rule was not saved: correct the marked fields.", "danger")
        return _render_form(form, groups, rule_id=rule_id, position=index + 1, digest=digest, general=general,
                            status=400)
    flash(f"Rule \u201c{rule['name']}\u201d {'added' if rule_id is None else 'saved'} (version {number}).", "success")
    return redirect(url_for("admin.access_policies") + f"#rule-{rule['id']}")


def _change(rule_id: str, what: str) -> Response:
    """Move up/down, enable/disable, duplicate or delete one rule, saved as a new version."""
    if not ActionForm().validate_on_submit():
        flash("The form expired: try again.", "danger")
        return redirect(url_for("admin.access_policies"))
    _, document = _current()
    rules = document["rules"]
    index = _rule_index(document, rule_id)
    rule = rules[index]
    anchor = rule_id
    if what in ("up", "down"):
        other = index - 1 if what == "up" else index + 1
        if not 0 <= other < len(rules):
            flash(f"\u201c{rule['name']}\u201d is already {'first' if what == 'up' else 'last'}.", "info")
            return redirect(url_for("admin.access_policies") + f"#rule-{rule_id}")
        rules[index], rules[other] = rules[other], rules[index]
        done = f"Moved \u201c{rule['name']}\u201d to position {other + 1}"
    elif what == "toggle":
        rule["enabled"] = not rule["enabled"]
        done = f"{'Enabled' if rule['enabled'] else 'Disabled'} \u201c{rule['name']}\u201d"
    elif what == "duplicate":
        twin = copy.deepcopy(rule)
        twin["id"], twin["name"], twin["enabled"] = service.new_rule_id(), f"{rule['name']} (copy)"[:256], False
        rules.insert(index + 1, twin)
        anchor = twin["id"]
        done = f"Duplicated \u201c{rule['name']}\u201d as \u201c{twin['name']}\u201d (disabled until you enable it)"
    else:
        rules.pop(index)
        anchor = ""
        done = f"Deleted \u201c{rule['name']}\u201d"
    number, problems = _save(document)
    if problems:
        flash("Nothing was changed: " + "; ".join(str(p) for p in problems[:5]), "danger")
    else:
        flash(f"{done} (version {number}).", "success")
    return redirect(url_for("admin.access_policies") + (f"#rule-{anchor}" if anchor else "#rules"))


@bp.post("/access-policies/rules/<rule_id>/move-up")
@roles_required(Role.ADMINISTRATOR)
def access_policy_move_up(rule_id: str) -> Response:
    return _change(rule_id, "up")


@bp.post("/access-policies/rules/<rule_id>/move-down")
@roles_required(Role.ADMINISTRATOR)
def access_policy_move_down(rule_id: str) -> Response:
    return _change(rule_id, "down")


@bp.post("/access-policies/rules/<rule_id>/toggle")
@roles_required(Role.ADMINISTRATOR)
def access_policy_toggle(rule_id: str) -> Response:
    return _change(rule_id, "toggle")


@bp.post("/access-policies/rules/<rule_id>/duplicate")
@roles_required(Role.ADMINISTRATOR)
def access_policy_duplicate(rule_id: str) -> Response:
    return _change(rule_id, "duplicate")


@bp.route("/access-policies/rules/<rule_id>/delete", methods=["GET", "POST"])
@roles_required(Role.ADMINISTRATOR)
def access_policy_delete(rule_id: str) -> Response | str:
    if request.method == "POST":
        return _change(rule_id, "delete")
    _, document = service.current()
    rule = document["rules"][_rule_index(document, rule_id)]
    return render_template("admin/access_policies/delete.html", rule=rule, sentence=sentence(rule),
                           form=ActionForm())


def parse_header_lines(text: str) -> dict[str, str]:
    """`X-Auth-Request-Roles: roles`, one per line, as {header: claim}; a line without a colon keeps its text as
    the header with no claim, so validation names it beside the row."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        name, _, claim = line.partition(":")
        if name.strip() or claim.strip():
            headers[name.strip()] = claim.strip().lower()
    return headers


def header_lines(headers: dict[str, str] | None) -> str:
    return "\n".join(f"{name}: {claim}" for name, claim in (headers or {}).items())


@bp.post("/access-policies/hosts")
@roles_required(Role.ADMINISTRATOR)
def access_policy_hosts() -> Response | tuple[str, int]:
    """Save the per-host defaults: each row's host and default, rows ticked Remove left out, a new row added."""
    form = HostsForm()
    if not form.validate_on_submit():
        flash("The form expired: try again.", "danger")
        return redirect(url_for("admin.access_policies"))
    hosts_in = request.form.getlist("host")
    defaults_in = request.form.getlist("default")
    headers_in = request.form.getlist("headers")
    removed = set(request.form.getlist("remove"))
    rows = []
    for position, host in enumerate(hosts_in):
        default = defaults_in[position] if position < len(defaults_in) else "signed_in"
        if str(position) in removed or (not host.strip() and position == len(hosts_in) - 1):
            continue  # the blank "add a host" row, or a row to remove
        row: dict[str, Any] = {"host": host.strip(), "default": default}
        headers = parse_header_lines(headers_in[position] if position < len(headers_in) else "")
        if headers:
            row["headers"] = headers
        rows.append(row)
    number, document = _current()
    document["hosts"] = rows
    saved, problems = _save(document, (request.form.get("note") or "").strip()[:500])
    if not problems:
        flash(f"Host defaults saved (version {saved}).", "success")
        return redirect(url_for("admin.access_policies") + "#hosts")
    host_errors: dict[int, list[str]] = {}
    general = []
    for problem in problems:
        match = HOST_ERROR.match(problem.path)
        if match:
            host_errors.setdefault(int(match.group(1)), []).append(problem.message[:1].upper() + problem.message[1:])
        else:
            general.append(str(problem))
    flash("The host defaults were not saved: correct the marked rows.", "danger")
    _, shown = service.current()
    rules = [(rule, sentence(rule)) for rule in shown["rules"]]
    return render_template("admin/access_policies/list.html", number=number, rules=rules, hosts=rows,
                           default_labels=DEFAULT_LABELS, form=ActionForm(), hosts_form=form,
                           header_lines=header_lines, header_claims=service.HEADER_CLAIMS,
                           host_errors=host_errors, general_host_errors=general,
                           datasources=ready_datasources()), 400


@bp.get("/access-policies/history")
@roles_required(Role.ADMINISTRATOR)
def access_policy_history() -> str:
    """Every version, newest first, with who saved it, when, its note, and what changed from the one before."""
    limit = int_arg("limit", 50, 1, 1000)
    shown = service.versions(limit=limit + 1)
    entries = []
    for position, row in enumerate(shown[:limit]):
        if position + 1 < len(shown):
            changes = service.diff(shown[position + 1].document, row.document)
        elif row.number == 1:
            changes = service.diff(service.EMPTY, row.document)
        else:
            changes = []
        entries.append({"version": row, "changes": changes, "rules": len((row.document or {}).get("rules") or ()),
                        "known": position + 1 < len(shown) or row.number == 1})
    return render_template("admin/access_policies/history.html", entries=entries, more=len(shown) > limit,
                           limit=limit)


@bp.get("/access-policies/what-if")
@roles_required(Role.ADMINISTRATOR)
def access_policy_what_if() -> tuple[str, int]:
    """What if? The decision /auth/verify would give a user (or someone not signed in) for a method and URL, with
    every rule tried, by the very same evaluator (`policies.evaluate.explain`)."""
    asked = {name: (request.args.get(name) or "").strip()[:2048] for name in WHAT_IF_FIELDS}
    asked["method"] = asked["method"].upper() if asked["method"].upper() in METHODS else "GET"
    errors: dict[str, str] = {}
    result = None
    if asked["url"]:
        parts = urlsplit(asked["url"])
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors["url"] = "Give a whole address starting with https:// or http://, e.g. https://app.example.com/."
        user = None
        if asked["user"]:
            user = db.session.scalar(select(User).where(func.lower(User.email) == asked["user"].lower()))
            if user is None:
                errors["user"] = f"No gateway user {asked['user']}: leave it empty for someone not signed in."
        minutes = parse_int(asked["minutes"] or "0", 0, MAX_AGE_MINUTES)
        if minutes is None:
            errors["minutes"] = f"A whole number of minutes from 0 to {MAX_AGE_MINUTES:,}."
        if asked["ip"]:
            try:
                ipaddress.ip_address(asked["ip"])
            except ValueError:
                errors["ip"] = "An IP address such as 10.1.2.3."
        if not errors:
            identity = None if user is None else identity_of(
                user, tuple(_split(asked["groups"], "comma")), tuple(_split(asked["roles"], "comma")),
                tuple(_split(asked["acrs"], "comma")), asked["provider"] or None, minutes or 0)
            decision, trace = explain(RequestFacts(asked["method"], parts.hostname or "", parts.path or "/",
                                                   asked["ip"] or None), identity)
            result = {"decision": decision, "trace": trace, "who": user.email if user else "someone not signed in"}
    return render_template("admin/access_policies/what_if.html", asked=asked, errors=errors, result=result,
                           methods=METHODS, number=service.latest_number()), 400 if errors else 200
