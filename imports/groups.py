"""Groups: the membership mirror from `/groups/delta` (`members@delta`), and local groups bound to a source group."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, insert, select, update

from core.extensions import db
from core.models import Group, group_members
from imports.models import UserImport
from imports.run import APPLY_BATCH, ImportRun
from imports.sql import MEMBERS, MIRROR, USERS, chunks, upsert


class GroupsPhase(ImportRun):
    def _groups_page(self, items: list[dict[str, Any]]) -> None:
        relevant = set(self.user_import.groups_key.split(","))
        sources = {g["id"].lower() for g in self.user_import.source_groups}
        touched: set[str] = set()  # members of the chosen source groups whose membership changed (scope)
        for item in items:
            gid = item["id"]
            if gid not in relevant:
                continue
            if "@removed" in item:
                gone = list(db.session.scalars(select(MEMBERS.c.user_id).where(
                    MEMBERS.c.import_id == self.user_import.id, MEMBERS.c.group_id == gid)))
                db.session.execute(delete(MEMBERS).where(MEMBERS.c.import_id == self.user_import.id,
                                                         MEMBERS.c.group_id == gid))
                self.out.saw_changed(gone)
                if gid.lower() in sources:
                    touched.update(gone)
                continue
            added, removed = [], []
            for member in item.get("members@delta") or []:
                if "user" not in str(member.get("@odata.type", "user")).lower():
                    continue
                (removed if "@removed" in member else added).append(member["id"])
            upsert(MEMBERS, [{"import_id": self.user_import.id, "group_id": gid, "user_id": uid} for uid in added],
                    ["import_id", "group_id", "user_id"], [])
            if removed:
                db.session.execute(delete(MEMBERS).where(MEMBERS.c.import_id == self.user_import.id,
                                                         MEMBERS.c.group_id == gid, MEMBERS.c.user_id.in_(removed)))
            self.out.saw_changed(added + removed)
            if gid.lower() in sources:  # a group followed only for the access rules never changes the scope
                touched.update(added)
                touched.update(removed)
            self.out.processed += len(added) + len(removed)
        if touched and self.user_import.scope == UserImport.SCOPE_GROUPS:
            for chunk in chunks(sorted(touched), APPLY_BATCH):
                db.session.execute(update(MIRROR).where(MIRROR.c.import_id == self.user_import.id,
                                                        MIRROR.c.object_id.in_(chunk)).values(dirty=True))

    def _sync_bound_groups(self) -> None:
        """Local groups bound to an Office 365 group get its members; with override, exactly its members."""
        groups = db.session.scalars(select(Group).where(Group.datasource_id == self.ds.id,
                                                        Group.source_group_id.is_not(None))).all()
        for group in groups:
            desired = set(db.session.scalars(select(USERS.c.id).join(
                MEMBERS, and_(MEMBERS.c.user_id == USERS.c.object_id, USERS.c.tenant_id == self.tenant)).where(
                MEMBERS.c.import_id == self.user_import.id, MEMBERS.c.group_id == group.source_group_id)))
            current = set(db.session.scalars(select(group_members.c.user_id).where(
                group_members.c.group_id == group.id)))
            if desired - current:
                db.session.execute(insert(group_members), [{"group_id": group.id, "user_id": uid}
                                                           for uid in sorted(desired - current)])
            extra = current - desired
            if group.override_members and extra:
                for chunk in chunks(sorted(extra), APPLY_BATCH):
                    db.session.execute(delete(group_members).where(group_members.c.group_id == group.id,
                                                                   group_members.c.user_id.in_(chunk)))
