"""After a delta round: the signed-in users the round saw change, checked against the import's mirror, and their
sessions ended or refreshed (sso.live_identity does the writing)."""

from __future__ import annotations

from sqlalchemy import select

from core.extensions import db
from core.models import Datasource, User
from imports import mirror
from imports.models import UserImport
from sso.live_identity import Applied, DirectoryFacts, apply_directory
from sso.sessions import store


def signed_in_users(datasource: Datasource) -> dict[int, tuple[str, str]]:
    """Local users of the datasource's tenant who have a stored session: {user id: (object id, e-mail)}."""
    ids = sorted(store().user_ids())
    found: dict[int, tuple[str, str]] = {}
    for start in range(0, len(ids), 500):
        for user_id, object_id, email in db.session.execute(select(User.id, User.object_id, User.email).where(
                User.id.in_(ids[start:start + 500]), User.tenant_id == datasource.tenant_id,
                User.object_id.is_not(None))):
            found[user_id] = (object_id, email)
    return found


def refresh_sessions(datasource: Datasource, user_import: UserImport, changed: set[str] | None) -> Applied:
    """Apply the mirror to the sessions of the signed-in users in `changed` (object ids; None: all of them).
    Commits the audit rows of the sessions it ended."""
    if not datasource.tenant_id:
        return Applied()
    users = signed_in_users(datasource)
    if changed is not None:
        users = {user_id: found for user_id, found in users.items() if found[0] in changed}
    if not users:
        return Applied()
    object_ids = [object_id for object_id, _ in users.values()]
    mirrored = mirror.users(user_import, object_ids)
    members = mirror.memberships(user_import, object_ids)
    followed = mirror.followed_groups(user_import)
    facts = {}
    for user_id, (object_id, email) in users.items():
        seen = mirrored.get(object_id)
        facts[user_id] = DirectoryFacts(
            tenant_id=datasource.tenant_id, email=email, enabled=seen.enabled if seen else None,
            sessions_valid_from=seen.sessions_valid_from if seen else None, followed_groups=followed,
            member_of=frozenset(members.get(object_id, set()) & followed))
    applied = apply_directory(facts)
    db.session.commit()
    return applied
