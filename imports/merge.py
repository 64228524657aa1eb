"""Merge: staged users into local users (creates and updates at once; removals, scope leavers and e-mail clashes
marked dirty for the apply phase), and the end of a full round (local users not seen are gone)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, select, update

from core.extensions import db
from core.models import user_roles, utcnow
from imports.delta import email_of, sessions_valid_from
from imports.models import UserImport
from imports.outcome import NAMES_KEPT
from imports.run import APPLY_BATCH, ImportRun
from imports.sql import (
    CREATE_COLUMNS,
    MEMBERS,
    MIRROR,
    MIRROR_COLUMNS,
    STAGED,
    UPDATE_COLUMNS,
    USERS,
    bulk,
    chunks,
    db_time,
    tune_transaction,
)

REPLAY_BATCH = 999  # users handled together by the careful path (bounds its IN lists)


class MergePhase(ImportRun):
    def _merge(self) -> None:
        """Apply the staged users to local users in one transaction, committed with the removal of their
        staged pages (a crash in between leaves them staged, and the next run merges them)."""
        tune_transaction()
        items = self.staged
        if items and self._fresh_round():
            items = self._create_fresh(items)
        for start in range(0, len(items), REPLAY_BATCH):
            self._users_page(list({item["id"]: item for item in items[start:start + REPLAY_BATCH]}.values()))
        db.session.execute(delete(STAGED).where(STAGED.c.import_id == self.user_import.id))
        self._staged = []
        self._commit("merge")

    def _fresh_round(self) -> bool:
        """A full round into a tenant none of whose local users predates it (a first import, or its resumption):
        new users can go in without looking them up; their mirror rows come at the round's end."""
        if self._fresh is None:
            start = self.user_import.last_full_sync_at
            self._fresh = bool(self.user_import.full_round and start is not None and db.session.scalar(
                select(USERS.c.id).where(USERS.c.tenant_id == self.tenant, USERS.c.created_at < start).limit(1))
                is None)
        return self._fresh

    def _create_fresh(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert the users new to this fresh round (each one's last version, in scope, with an e-mail), sorted by
        e-mail so its unique index fills in order, skipping any that clash. Returns the items left for the
        careful path, in reading order: clashes, removals, users without an e-mail, users already here."""
        latest = {item["id"]: item for item in items}
        in_scope = self._in_scope(list(latest))
        stamp = utcnow()
        now = db_time(stamp)
        rows = []
        for oid, item in latest.items():
            email = email_of(item)
            if "@removed" in item or oid not in in_scope or not email:
                continue
            rows.append({"email": email, "display_name": item.get("displayName") or "",
                         "active": bool(item.get("accountEnabled", True)), "tenant_id": self.tenant,
                         "object_id": oid, "created_at": now, "updated_at": now})
        rows.sort(key=lambda row: row["email"])
        before = db.session.scalar(select(func.max(USERS.c.id))) or 0
        inserted = bulk("insert_ignore", USERS, CREATE_COLUMNS, rows)
        if not inserted:
            return items
        created_here = and_(USERS.c.id > before, USERS.c.created_at == stamp)  # by id range, not an index scan
        if self.role_id is not None:
            db.session.execute(insert(user_roles).from_select(["user_id", "role_id"], select(
                USERS.c.id, db.literal(self.role_id)).where(created_here)))
        if inserted == len(rows):
            created = {row["object_id"] for row in rows}
        else:
            created = {row.object_id for row in db.session.execute(
                select(USERS.c.object_id, USERS.c.tenant_id).where(created_here)) if row.tenant_id == self.tenant}
        self.out.created += len(created)
        names = self.out.names.setdefault("created", [])
        for oid, item in latest.items():
            if len(names) >= NAMES_KEPT:
                break
            if oid in created:
                names.append(item.get("displayName") or item.get("userPrincipalName") or oid)
        return [item for item in items if item["id"] not in created]

    def _users_page(self, items: list[dict[str, Any]]) -> None:
        round_no, import_id = self.user_import.round, self.user_import.id
        present = [item for item in items if "@removed" not in item]
        any_removed = len(present) < len(items)
        if self.user_import.full_round or any_removed:
            cols = ("upn", "mail", "display_name", "account_enabled", "removed", "dirty", "seen_round",
                    "sessions_valid_from")
        else:
            cols = ("upn", "mail", "display_name", "account_enabled", "removed", "seen_round", "sessions_valid_from")
        deferred = self._apply_present(present)
        mirror_rows = []
        for item in items:
            removed = "@removed" in item
            mirror_rows.append({
                "import_id": import_id, "object_id": item["id"], "upn": item.get("userPrincipalName") or "",
                "mail": item.get("mail"), "display_name": item.get("displayName") or "",
                "account_enabled": bool(item.get("accountEnabled", True)), "removed": removed, "dirty": removed,
                "seen_round": round_no, "sessions_valid_from": _valid_from(item)})
        bulk("upsert", MIRROR, [*MIRROR_COLUMNS, "sessions_valid_from"], mirror_rows, keys=("import_id", "object_id"),
             update_cols=cols)
        if deferred:
            db.session.execute(update(MIRROR).where(MIRROR.c.import_id == self.user_import.id,
                                                    MIRROR.c.object_id.in_(deferred)).values(dirty=True))

    def _apply_present(self, items: list[dict[str, Any]], *, resolve_clashes: bool = False) -> list[str]:
        """Create or update the local users of `items` (Graph-shaped); returns object ids deferred to apply."""
        oids = [item["id"] for item in items]
        in_scope = self._in_scope(oids)
        local = self._local_by_oid(oids)
        deferred: list[str] = []
        wanted_emails = {}
        for item in items:
            row = local.get(item["id"])
            if item["id"] in in_scope and (row is None or row.email != email_of(item)):
                wanted_emails[item["id"]] = email_of(item)
        holders = self._email_holders(wanted_emails.values())
        fields = set(self.user_import.profile_fields)
        creates: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        claimed: set[str] = set()
        now = db_time(utcnow())
        for item in items:
            oid, row = item["id"], local.get(item["id"])
            name = item.get("displayName") or item.get("userPrincipalName") or oid
            if oid not in in_scope:
                if row is not None:
                    deferred.append(oid)  # left the scope: handled with the removals
                continue
            email = email_of(item)
            if not email:
                self.out.error(f"{name}: has neither mail nor userPrincipalName; skipped")
                continue
            if oid in wanted_emails:
                holder = holders.get(email)
                if (holder is not None and holder.object_id != oid) or email in claimed:
                    if resolve_clashes and holder is not None and self._free_email(holder):
                        pass
                    elif resolve_clashes or holder is None or holder.tenant_id != self.tenant:
                        self.out.error(f"{name}: the e-mail {email} is already used by another local account")
                        continue
                    else:
                        deferred.append(oid)  # maybe a deleted-and-recreated user: decide after removals
                        continue
                claimed.add(email)
            enabled = bool(item.get("accountEnabled", True))
            if row is None:
                creates.append({"email": email, "display_name": item.get("displayName") or "", "active": enabled,
                                "tenant_id": self.tenant, "object_id": oid, "created_at": now, "updated_at": now})
                self.out.note("created", name)
                continue
            new = {"id": row.id, "email": row.email, "display_name": row.display_name, "active": row.active,
                   "updated_at": now}
            if "display_name" in fields:
                new["display_name"] = item.get("displayName") or ""
            if "email" in fields:
                new["email"] = email
            if "active" in fields:
                new["active"] = enabled
                if row.active and not enabled:
                    self._ending.add(row.id)
            if (new["email"], new["display_name"], new["active"]) != (row.email, row.display_name, row.active):
                updates.append(new)
                self.out.note("updated", name)
            else:
                self.out.unchanged += 1
        self._write(creates, updates)
        return deferred

    def _in_scope(self, object_ids: list[str]) -> set[str]:
        if self.user_import.scope != UserImport.SCOPE_GROUPS:
            return set(object_ids)
        chosen = [g["id"] for g in self.user_import.source_groups]
        if not chosen or not object_ids:
            return set()
        found: set[str] = set()
        for chunk in chunks(object_ids, APPLY_BATCH):  # a merge asks about up to MERGE_CHUNK users at once
            found.update(db.session.scalars(select(MEMBERS.c.user_id).distinct().where(
                MEMBERS.c.import_id == self.user_import.id, MEMBERS.c.group_id.in_(chosen),
                MEMBERS.c.user_id.in_(chunk))))
        return found

    def _local_by_oid(self, object_ids: list[str]) -> dict[str, Any]:
        if not object_ids:
            return {}
        rows = db.session.execute(select(USERS.c.id, USERS.c.object_id, USERS.c.email, USERS.c.display_name,
                                         USERS.c.active).where(USERS.c.tenant_id == self.tenant,
                                                               USERS.c.object_id.in_(object_ids)))
        return {row.object_id: row for row in rows}

    def _email_holders(self, emails: Iterable[str]) -> dict[str, Any]:
        wanted = sorted(set(e for e in emails if e))
        out: dict[str, Any] = {}
        for chunk in chunks(wanted, APPLY_BATCH):
            for row in db.session.execute(select(USERS.c.id, USERS.c.email, USERS.c.tenant_id, USERS.c.object_id)
                                          .where(USERS.c.email.in_(chunk))):
                out[row.email] = row
        return out

    def _grant_default_role(self, object_ids: list[str]) -> None:
        if self.role_id is not None and object_ids:
            db.session.execute(insert(user_roles).from_select(
                ["user_id", "role_id"],
                select(USERS.c.id, db.literal(self.role_id)).where(
                    USERS.c.tenant_id == self.tenant, USERS.c.object_id.in_(object_ids))))

    def _write(self, creates: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
        if creates:
            bulk("insert", USERS, CREATE_COLUMNS, creates)
            self._grant_default_role([c["object_id"] for c in creates])
        bulk("update", USERS, UPDATE_COLUMNS, updates)

    def _free_email(self, holder: Any) -> bool:
        """A clash with a local user whose directory object is gone: move that user's e-mail aside."""
        if holder.tenant_id != self.tenant or holder.object_id is None:
            return False
        alive = db.session.scalar(select(MIRROR.c.id).where(
            MIRROR.c.import_id == self.user_import.id, MIRROR.c.object_id == holder.object_id,
            MIRROR.c.removed.is_(False)))
        if alive is not None:
            return False
        db.session.execute(update(USERS).where(USERS.c.id == holder.id).values(
            email=f"departed.{holder.object_id}@invalid", updated_at=utcnow()))
        return True

    def _account_for_locals(self) -> None:
        """End of a full round: local users of the tenant without a mirror row were either created by this round's
        first-import fast path (which skips the mirror: they were seen) or never seen by the import at all (gone)."""
        start = self.user_import.last_full_sync_at or utcnow()
        no_row = ~select(MIRROR.c.id).where(MIRROR.c.import_id == self.user_import.id,
                                            MIRROR.c.object_id == USERS.c.object_id).exists()
        gone = USERS.c.created_at < start  # one pass over the tenant's users: seen ones and gone ones together
        rows = select(db.literal(self.user_import.id), USERS.c.object_id, USERS.c.email, USERS.c.email,
                      USERS.c.display_name, USERS.c.active, gone, gone,
                      case((gone, 0), else_=db.literal(self.user_import.round))).where(
            USERS.c.tenant_id == self.tenant, USERS.c.object_id.is_not(None), no_row).order_by(USERS.c.object_id)
        db.session.execute(insert(MIRROR).from_select(MIRROR_COLUMNS, rows))

    def _mark_unseen(self) -> None:
        """End of a full round: users not seen in it are gone from the source."""
        db.session.execute(update(MIRROR).where(MIRROR.c.import_id == self.user_import.id,
                                                MIRROR.c.seen_round < self.user_import.round,
                                                MIRROR.c.removed.is_(False)).values(removed=True, dirty=True))


def _valid_from(item: dict[str, Any]) -> Any:
    moment = sessions_valid_from(item)
    return db_time(moment) if moment is not None else None
