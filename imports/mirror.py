"""The directory as the import's mirror holds it now, per user: enabled, when their sign-in sessions became valid,
and their memberships of the groups the mirror follows (read by live access; written by the import's phases)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from core.extensions import db
from core.timefmt import as_utc
from imports.models import UserImport
from imports.sql import MEMBERS, MIRROR, chunks


@dataclass(frozen=True)
class MirroredUser:
    object_id: str
    enabled: bool
    sessions_valid_from: float | None


def followed_groups(user_import: UserImport) -> frozenset[str]:
    """The groups whose members the mirror holds completely: those of the last finished groups round (lower
    case); none before the first one finished."""
    if not user_import.groups_key or not user_import.groups_delta:
        return frozenset()
    return frozenset(group.lower() for group in user_import.groups_key.split(",") if group)


def users(user_import: UserImport, object_ids: Iterable[str]) -> dict[str, MirroredUser]:
    """The mirror's users among `object_ids` (a removed user counts as not enabled)."""
    found: dict[str, MirroredUser] = {}
    for chunk in chunks(sorted(set(object_ids)), 500):
        for row in db.session.execute(select(MIRROR.c.object_id, MIRROR.c.account_enabled, MIRROR.c.removed,
                                             MIRROR.c.sessions_valid_from).where(
                MIRROR.c.import_id == user_import.id, MIRROR.c.object_id.in_(chunk))):
            found[row.object_id] = MirroredUser(row.object_id, bool(row.account_enabled) and not row.removed,
                                                as_utc(row.sessions_valid_from).timestamp()
                                                if row.sessions_valid_from is not None else None)
    return found


def memberships(user_import: UserImport, object_ids: Iterable[str]) -> dict[str, set[str]]:
    """Each of `object_ids`' followed groups (lower case), from the membership mirror."""
    found: dict[str, set[str]] = {}
    for chunk in chunks(sorted(set(object_ids)), 500):
        for user_id, group_id in db.session.execute(select(MEMBERS.c.user_id, MEMBERS.c.group_id).where(
                MEMBERS.c.import_id == user_import.id, MEMBERS.c.user_id.in_(chunk))):
            found.setdefault(user_id, set()).add(group_id.lower())
    return found
