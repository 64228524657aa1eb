"""Apply: the removal guard, then the dirty mirror rows in batches (removals and scope leavers first, so their
e-mails are free for the users created after them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update

from core.extensions import db
from core.models import utcnow
from imports.merge import MergePhase
from imports.models import UserImport
from imports.outcome import NAMES_KEPT
from imports.run import APPLY_BATCH
from imports.sql import MEMBERS, MIRROR, USERS


class RemovalGuardTripped(Exception):
    """The run would disable or remove more than the allowed share of users; an admin must confirm."""

    def __init__(self, pending: int, total: int, percent: int, names: list[str]) -> None:
        super().__init__(f"This run would disable or remove {pending} of {total} imported users, more than the "
                         f"{percent}% allowed. Nothing was disabled or removed: review the users below and "
                         "confirm the removals to apply them.")
        self.pending, self.total, self.percent, self.names = pending, total, percent, names


class ApplyPhase(MergePhase):
    """Applying re-uses the merge's write path for the users it held back."""

    def _gone_query(self) -> Any:
        """Local users whose directory object was removed or left the scope (dirty mirror rows)."""
        in_groups = select(MEMBERS.c.user_id).where(
            MEMBERS.c.import_id == self.user_import.id,
            MEMBERS.c.group_id.in_([g["id"] for g in self.user_import.source_groups] or [""]))
        gone = MIRROR.c.removed.is_(True)
        if self.user_import.scope == UserImport.SCOPE_GROUPS:
            gone = or_(gone, MIRROR.c.object_id.not_in(in_groups))
        return (select(USERS.c.id, USERS.c.email, USERS.c.display_name, USERS.c.active, MIRROR.c.id.label("mid"))
                .join(MIRROR, and_(MIRROR.c.object_id == USERS.c.object_id, USERS.c.tenant_id == self.tenant))
                .where(MIRROR.c.import_id == self.user_import.id, MIRROR.c.dirty.is_(True), gone))

    def _check_guard(self) -> None:
        policy = self.user_import.on_missing
        if policy == "nothing" or self.confirm:
            return
        query = self._gone_query()
        if policy == "disable":
            query = query.where(USERS.c.active.is_(True))
        pending = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        total = db.session.scalar(select(func.count(USERS.c.id)).where(
            USERS.c.tenant_id == self.tenant, USERS.c.object_id.is_not(None))) or 0
        if pending and pending * 100 > self.user_import.removal_guard_percent * total:
            names = [r.display_name or r.email for r in db.session.execute(query.limit(NAMES_KEPT))]
            raise RemovalGuardTripped(pending, total, self.user_import.removal_guard_percent, names)

    def _apply_dirty(self) -> None:
        self._check_guard()
        policy = self.user_import.on_missing
        while True:  # removals (and scope leavers) first, so their e-mails are free for re-created users
            batch = db.session.execute(self._gone_query().order_by(MIRROR.c.id).limit(APPLY_BATCH)).all()
            if not batch:
                break
            for row in batch:
                label = row.display_name or row.email
                if policy == "remove":
                    db.session.execute(delete(USERS).where(USERS.c.id == row.id))
                    self._ending.add(row.id)
                    self.out.note("removed", label)
                elif policy == "disable" and row.active:
                    db.session.execute(update(USERS).where(USERS.c.id == row.id).values(active=False,
                                                                                       updated_at=utcnow()))
                    self._ending.add(row.id)
                    self.out.note("disabled", label)
            db.session.execute(update(MIRROR).where(MIRROR.c.id.in_([r.mid for r in batch])).values(dirty=False))
            self._commit("apply")
        db.session.execute(delete(MIRROR).where(MIRROR.c.import_id == self.user_import.id, MIRROR.c.removed.is_(True),
                                                MIRROR.c.dirty.is_(True)))
        after = 0
        while True:
            batch = db.session.execute(select(MIRROR).where(
                MIRROR.c.import_id == self.user_import.id, MIRROR.c.dirty.is_(True), MIRROR.c.id > after)
                .order_by(MIRROR.c.id).limit(APPLY_BATCH)).all()
            if not batch:
                break
            items = [{"id": r.object_id, "userPrincipalName": r.upn, "mail": r.mail, "displayName": r.display_name,
                      "accountEnabled": r.account_enabled} for r in batch if not r.removed]
            self._apply_present(items, resolve_clashes=True)
            after = batch[-1].id
            db.session.execute(update(MIRROR).where(MIRROR.c.id.in_([r.id for r in batch])).values(dirty=False))
            db.session.execute(delete(MIRROR).where(MIRROR.c.id.in_([r.id for r in batch if r.removed])))
            self._commit("apply")
