"""Sessions kept in step with the directory: what live access learns about a signed-in user (disabled, sign-in
sessions revoked, group memberships changed) applied to their stored sessions.

The groups a rule needs are read from the session on every /auth/verify, so the fresh membership is written into
the stored session itself (its identity's `groups`, with `rev` counted up): the hot path keeps its single session
read and gains no query. A disabled user loses every session at once; sessions signed in before the user's
`signInSessionsValidFromDateTime` end (revokeSignInSessions, a password reset).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core import audit
from sso.sessions import SessionRecord, identity_revision, store

log = logging.getLogger(__name__)
# Graph gives signInSessionsValidFromDateTime to the second: a session signed in during that second may predate
# the revocation, so it ends too (its user signs in again).
VALID_FROM_PRECISION = 1.0


@dataclass(frozen=True)
class DirectoryFacts:
    """What the directory says now about one local user (from the import's mirror)."""

    tenant_id: str
    email: str
    enabled: bool | None  # None: the mirror has no row for the user
    sessions_valid_from: float | None  # epoch seconds
    followed_groups: frozenset[str]  # lower-case ids of the groups whose members the mirror keeps
    member_of: frozenset[str]  # of those, the user's


@dataclass
class Applied:
    ended: int = 0
    refreshed: int = 0


def refreshed_groups(current: list[str], facts: DirectoryFacts) -> list[str]:
    """The session's groups with the followed ones replaced by the mirror's (order kept, new ones last)."""
    kept = [group for group in current if group.lower() not in facts.followed_groups]
    present = {group.lower() for group in kept}
    return kept + sorted(group for group in facts.member_of if group not in present)


def _signed_in_at(record: SessionRecord, identity: Mapping[str, Any]) -> float:
    value = identity.get("signed_in_at")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else record.created_at


def apply_directory(facts: Mapping[int, DirectoryFacts]) -> Applied:
    """Apply the directory's facts to the stored sessions of these local users (by user id). Audits each ending."""
    backend, applied = store(), Applied()
    disabled = sorted(user_id for user_id, fact in facts.items() if fact.enabled is False)
    if disabled:
        applied.ended += backend.end_for_users(disabled)
        for user_id in disabled:
            audit.record("user.sessions_end", facts[user_id].email, reason="disabled in Microsoft Entra ID")
    revoked: set[int] = set()
    for record in backend.for_users(user_id for user_id, fact in facts.items() if fact.enabled is not False):
        fact = facts.get(record.user_id or 0)
        identity = record.data.get("identity")
        if fact is None or not isinstance(identity, dict) or \
                str(identity.get("tid") or "").lower() != fact.tenant_id.lower():
            continue  # signed in some other way: the directory says nothing about this session
        if fact.sessions_valid_from is not None and \
                _signed_in_at(record, identity) < fact.sessions_valid_from + VALID_FROM_PRECISION:
            backend.delete(record.id_hash)
            applied.ended += 1
            revoked.add(record.user_id or 0)
            continue
        if not fact.followed_groups:
            continue
        current = [str(group) for group in identity.get("groups") or ()]
        groups = refreshed_groups(current, fact)
        if {g.lower() for g in groups} == {g.lower() for g in current}:
            continue
        record.data = {**record.data, "identity": {**identity, "groups": groups,
                                                   "rev": identity_revision(identity) + 1}}
        if backend.update_data(record):
            applied.refreshed += 1
    for user_id in sorted(revoked):
        audit.record("user.sessions_end", facts[user_id].email,
                     reason="sign-in sessions revoked in Microsoft Entra ID")
    if applied.ended or applied.refreshed:
        log.info("live access: %s session(s) ended, %s refreshed", applied.ended, applied.refreshed)
    return applied
