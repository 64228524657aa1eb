"""A datasource's import settings: what to import, how, and which local groups mirror which Office 365 groups.

The admin page (admin/import_settings.py) shows the form and calls `save_settings`; the rules live here, so any
other caller (a CLI, the API) gets the same checks, the same audit event and the same commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from core import audit
from core.extensions import db
from core.models import Datasource, Group, Role, utcnow
from datasources.grant import graph_client
from imports.delta import resolve_groups
from imports.models import UserImport
from imports.state import reset_sync_state


@dataclass(frozen=True)
class ImportSettings:
    """The settings as an administrator writes them (group names or ids, bindings as text lines)."""

    scope: str
    source_groups: str  # names or ids, one per line (members of any)
    default_role: str
    profile_fields: list[str]
    on_missing: str
    removal_guard_percent: int
    bindings: str  # "Local group = Office 365 group", one per line
    override_members: bool


class SettingsRefused(ValueError):
    """Settings that cannot be saved; `field` names the setting the message is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def bound_groups(datasource: Datasource) -> list[Group]:
    return list(db.session.scalars(select(Group).where(Group.datasource_id == datasource.id,
                                                       Group.source_group_id.is_not(None))))


def current_settings(user_import: UserImport, datasource: Datasource) -> ImportSettings:
    """The stored settings in the shape an administrator edits them."""
    bound = bound_groups(datasource)
    return ImportSettings(
        scope=user_import.scope, source_groups="\n".join(g["name"] for g in user_import.source_groups),
        default_role=user_import.default_role, profile_fields=list(user_import.profile_fields),
        on_missing=user_import.on_missing, removal_guard_percent=user_import.removal_guard_percent,
        bindings="\n".join(f"{g.name} = {g.source_group_name or g.source_group_id}" for g in bound),
        override_members=any(g.override_members for g in bound))


def parse_bindings(text: str) -> list[tuple[str, str]]:
    """("Local group", "Office 365 group") pairs from "Local = Remote" lines; blank lines are skipped."""
    pairs = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        local, sep, remote = line.partition("=")
        if not sep or not local.strip() or not remote.strip():
            raise SettingsRefused("bindings", f"“{line.strip()}”: write Local group = Office 365 group")
        pairs.append((local.strip()[:256], remote.strip()))
    return pairs


def _check_choices(settings: ImportSettings) -> None:
    if settings.scope not in (UserImport.SCOPE_ALL, UserImport.SCOPE_GROUPS):
        raise SettingsRefused("scope", "Choose all users or members of chosen groups.")
    if settings.default_role not in Role.ALL:
        raise SettingsRefused("default_role", f"Unknown role: {settings.default_role}.")
    if not set(settings.profile_fields) <= set(UserImport.PROFILE_FIELDS):
        raise SettingsRefused("profile_fields", "Choose among display name, e-mail and account enabled.")
    if settings.on_missing not in UserImport.MISSING_CHOICES:
        raise SettingsRefused("on_missing", "Choose what happens to users no longer in the source.")
    if not 0 <= settings.removal_guard_percent <= 100:
        raise SettingsRefused("removal_guard_percent", "Enter a share between 0 and 100.")


def save_settings(user_import: UserImport, datasource: Datasource, settings: ImportSettings, *, actor: str) -> None:
    """Check, look the named groups up in Office 365, store, audit and commit.

    Raises SettingsRefused (nothing stored) or office365.errors.Office365Error when the look-up failed.
    """
    _check_choices(settings)
    bindings = parse_bindings(settings.bindings)
    names = [n for n in (settings.source_groups or "").splitlines() if n.strip()]
    wanted = names + [remote for _, remote in bindings]
    resolved, missing = resolve_groups(graph_client(datasource), wanted) if wanted else ([], [])
    if missing:
        raise SettingsRefused("source_groups", f"Not found in Office 365: {', '.join(missing)}")
    if settings.scope == UserImport.SCOPE_GROUPS and not names:
        raise SettingsRefused("source_groups", "Name at least one group, or import all users.")
    groups, remotes = resolved[:len(names)], resolved[len(names):]
    _store(user_import, settings, groups, actor)
    _bind_groups(datasource, list(zip(bindings, remotes, strict=True)), settings.override_members)
    audit.record("import.settings", datasource.name, actor=actor, scope=user_import.scope,
                 groups=[g["name"] for g in groups], on_missing=user_import.on_missing,
                 guard=user_import.removal_guard_percent,
                 bindings=[f"{name} = {remote['name']}" for (name, _), remote in zip(bindings, remotes, strict=True)])
    db.session.commit()


def _store(user_import: UserImport, settings: ImportSettings, groups: list[dict[str, Any]], actor: str) -> None:
    before = (user_import.scope, [g["id"] for g in user_import.source_groups], user_import.profile_fields)
    user_import.scope = settings.scope
    user_import.source_groups = groups
    user_import.default_role = settings.default_role
    user_import.profile_fields = list(settings.profile_fields)
    user_import.on_missing = settings.on_missing
    user_import.removal_guard_percent = settings.removal_guard_percent
    user_import.updated_at, user_import.updated_by = utcnow(), actor
    after = (user_import.scope, [g["id"] for g in user_import.source_groups], user_import.profile_fields)
    if before != after and user_import.phase == "idle" and user_import.running_run_id is None:
        reset_sync_state(user_import)  # what is in scope changed: the next run reads everything again


def _bind_groups(datasource: Datasource, bindings: list[tuple[tuple[str, str], dict[str, Any]]],
                 override_members: bool) -> None:
    """Local groups (created if needed) take their Office 365 group; groups no longer named are unbound."""
    keep = set()
    for (local_name, _), remote in bindings:
        group = db.session.scalar(select(Group).where(func.lower(Group.name) == local_name.lower()))
        if group is None:
            group = Group(name=local_name)
            db.session.add(group)
        group.datasource_id, group.source_group_id, group.source_group_name = datasource.id, remote["id"], \
            remote["name"]
        group.override_members = override_members
        db.session.flush()
        keep.add(group.id)
    for group in db.session.scalars(select(Group).where(Group.datasource_id == datasource.id)):
        if group.id not in keep:
            group.source_group_id = group.source_group_name = None
