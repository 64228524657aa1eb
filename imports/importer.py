"""Incremental user import from Office 365 into local users and groups (docs/microsoft.md §6).

A round walks four phases, each committed page (or chunk) by page together with where to go on from, so a
crash, a restart or a Graph outage resumes exactly where it stopped and doing a page again is harmless (every
write is an upsert keyed by (tenant id, object id)):

1. groups: `/groups/delta` filtered to the groups that matter (chosen source groups, bound local groups);
   `members@delta` is applied to the membership mirror and marks affected users dirty.
2. users: `/users/delta` (from the stored deltaLink, else a full round); each page is staged (one row of JSON)
   and committed with the next link, so a page's commit costs the same however large the tenant (committing
   local users page by page rewrote most of the users table's two random-key indexes at every page). Whenever
   MERGE_CHUNK users are staged, they are merged.
3. merge: what is still staged is merged. A merge applies the staged users to local users in reading order, in
   one transaction committed with the removal of their staged pages; in a full round into a tenant with no older
   local users, new users are inserted without looking them up, sorted by e-mail. Creates and updates are
   applied at once; removals, users leaving the scope and e-mail clashes are only marked dirty. At the end of a
   full round, users not seen are marked removed.
4. apply: the removal guard, then the dirty users in batches (removals first), then bound local groups.

An expired delta token (410, syncStateNotFound, resyncRequired) discards the sync state and starts a full round.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update

from core.extensions import db
from core.models import Datasource, Group, Role, group_members, user_roles, utcnow
from imports.models import UserImport
from imports.reader import PrefetchingReader
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
    upsert,
)
from jobs.models import TaskRun
from office365.errors import GraphError
from office365.graph import GraphClient
from office365.odata import string_literal

log = logging.getLogger(__name__)

USER_SELECT = "id,displayName,mail,userPrincipalName,accountEnabled"
GROUP_SELECT = "id,displayName,members"
RESYNC_CODES = {"syncStateNotFound", "resyncRequired", "SyncStateNotFound"}
APPLY_BATCH = 500
MERGE_CHUNK = 10_000  # staged users merged per transaction (they are held in memory until then)
REPLAY_BATCH = 999  # users handled together by the careful path (bounds its IN lists)
NAMES_KEPT = 200


class RemovalGuardTripped(Exception):
    """The run would disable or remove more than the allowed share of users; an admin must confirm."""

    def __init__(self, pending: int, total: int, percent: int, names: list[str]) -> None:
        super().__init__(f"This run would disable or remove {pending} of {total} imported users, more than the "
                         f"{percent}% allowed. Nothing was disabled or removed: review the users below and "
                         "confirm the removals to apply them.")
        self.pending, self.total, self.percent, self.names = pending, total, percent, names


@dataclass
class Outcome:
    """Counts of a run, plus the names behind them (capped) for the dry run and the history."""

    created: int = 0
    updated: int = 0
    disabled: int = 0
    removed: int = 0
    unchanged: int = 0
    errors: int = 0
    pages: int = 0
    processed: int = 0
    resyncs: int = 0
    names: dict[str, list[str]] = field(default_factory=dict)
    error_messages: list[str] = field(default_factory=list)

    def note(self, kind: str, name: str, amount: int = 1) -> None:
        setattr(self, kind, getattr(self, kind) + amount)
        kept = self.names.setdefault(kind, [])
        if len(kept) < NAMES_KEPT:
            kept.append(name)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_messages) < NAMES_KEPT:
            self.error_messages.append(message)

    def summary(self) -> dict[str, Any]:
        return {"names": self.names, "error_messages": self.error_messages}


def is_resync(exc: GraphError) -> bool:
    return exc.status == 410 or (exc.code or "") in RESYNC_CODES


def import_for(datasource: Datasource) -> UserImport:
    """The datasource's import settings (created with the defaults the first time)."""
    imp = db.session.scalar(select(UserImport).where(UserImport.datasource_id == datasource.id))
    if imp is None:
        imp = UserImport(datasource_id=datasource.id)
        db.session.add(imp)
        db.session.flush()
    return imp


def reset_sync_state(imp: UserImport) -> None:
    """Forget the delta links: the next run is a full round (settings changed, or the token expired)."""
    imp.phase, imp.full_round = "idle", True
    imp.users_next = imp.users_delta = imp.groups_next = imp.groups_delta = None
    imp.groups_key = ""
    db.session.execute(delete(STAGED).where(STAGED.c.import_id == imp.id))


def resolve_groups(client: GraphClient, names: Iterable[str]) -> tuple[list[dict[str, str]], list[str]]:
    """Office 365 groups by id or display name: ([{"id", "name"}], [names not found])."""
    found, missing = [], []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        params = {"$select": "id,displayName", "$top": "2"}
        params["$filter"] = f"id eq {string_literal(name)}" if _looks_like_id(name) else \
            f"displayName eq {string_literal(name)}"
        items = client.get_page("/groups", params=params).items
        if items:
            found.append({"id": items[0]["id"], "name": items[0].get("displayName") or name})
        else:
            missing.append(name)
    return found, missing


def _looks_like_id(text: str) -> bool:
    parts = text.split("-")
    return len(parts) == 5 and all(c in "0123456789abcdefABCDEF-" for c in text)


def _page_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A delta page's items, once each (the last version of any repeated in the page)."""
    return list({item["id"]: item for item in body.get("value") or [] if "id" in item}.values())


def _email_of(item: dict[str, Any]) -> str:
    return str(item.get("mail") or item.get("userPrincipalName") or "").strip().lower()


class Importer:
    """One run of a datasource's import. `on_page(outcome)` runs before each commit (progress, heartbeat)."""

    def __init__(self, imp: UserImport, datasource: Datasource, client: GraphClient, *,
                 confirm_removals: bool = False, page_size: int = 999,
                 on_page: Callable[[Outcome, str], None] | None = None,
                 client_factory: Callable[[], GraphClient] | None = None) -> None:
        self.imp, self.ds, self.client = imp, datasource, client
        self.reader = PrefetchingReader(client_factory, page_size) if client_factory else None
        self._fresh: bool | None = None  # see _fresh_round
        self._staged: list[dict[str, Any]] | None = None  # users staged and not yet merged, in reading order
        self.tenant = datasource.tenant_id or ""
        self.confirm = confirm_removals or imp.removals_confirmed
        self.page_size = page_size
        self.on_page = on_page or (lambda outcome, phase: None)
        self.out = Outcome()
        self._ending: set[int] = set()  # local users disabled or removed in this transaction: see _commit
        self.role_id = db.session.scalar(select(Role.id).where(Role.name == imp.default_role)) or \
            db.session.scalar(select(Role.id).where(Role.name == Role.USER))

    # -- the round ---------------------------------------------------------------------------------------------

    def run(self) -> Outcome:
        while True:
            try:
                self._round()
                return self.out
            except GraphError as exc:
                if not is_resync(exc) or self.out.resyncs >= 2:
                    raise
                log.info("import %s: delta state expired (%s); starting a full sync", self.ds.name, exc.code)
                db.session.rollback()  # the failed page's transaction
                self._ending.clear()
                self.out.resyncs += 1
                reset_sync_state(self.imp)  # drops the staged pages of the expired round ...
                self._staged = self._fresh = None  # ... and what this run holds of them
                self._commit("resync")

    def _round(self) -> None:
        imp = self.imp
        if imp.phase == "idle":
            imp.round += 1
            imp.full_round = imp.users_delta is None
            if imp.full_round:
                imp.last_full_sync_at = utcnow()  # when this full round started: see _account_for_locals
            key = ",".join(imp.relevant_group_ids)
            if key != imp.groups_key:
                imp.groups_delta = imp.groups_next = None
                db.session.execute(delete(MEMBERS).where(MEMBERS.c.import_id == imp.id))
                imp.groups_key = key
            imp.phase = "groups"
            self._commit("groups")
        if imp.phase == "groups":
            if imp.groups_key:
                self._walk("groups")
            imp.phase = "users"
            self._commit("users")
        if imp.phase == "users":
            self._walk("users")
            imp.phase = "merge"
            self._commit("merge")
        if imp.phase == "merge":
            tune_transaction(first=True)
            self._merge()
            if imp.full_round:
                self._account_for_locals()
                self._mark_unseen()
            imp.phase = "apply"
            self._commit("apply")
        if imp.phase == "apply":
            self._apply_dirty()
            self._sync_bound_groups()
            imp.phase = "idle"
            imp.removals_confirmed = False
            self._commit("done")

    def _first_url(self, kind: str) -> tuple[str, dict[str, str] | None]:
        imp = self.imp
        if kind == "users":
            if imp.users_next:
                return imp.users_next, None
            if imp.users_delta and not imp.full_round:
                return imp.users_delta, None
            return "/users/delta", {"$select": USER_SELECT}
        if imp.groups_next:
            return imp.groups_next, None
        if imp.groups_delta:
            return imp.groups_delta, None
        ids = imp.groups_key.split(",")
        params = {"$select": GROUP_SELECT}
        if len(ids) <= 50:
            params["$filter"] = " or ".join(f"id eq '{gid}'" for gid in ids)
        return "/groups/delta", params

    @property
    def requests_sent(self) -> int:
        return self.client.requests_sent + (self.reader.requests_sent if self.reader else 0)

    def pages(self, kind: str) -> Iterator[tuple[dict[str, Any], bytes]]:
        """The delta pages of `kind` from where the round stands: (parsed body, body as received)."""
        url, params = self._first_url(kind)
        if self.reader is not None:
            yield from self.reader.pages(url, params)
            return
        while True:
            resp = self.client.request("GET", url, params=params,
                                       headers={"Prefer": f"odata.maxpagesize={self.page_size}"})
            body = resp.body if isinstance(resp.body, dict) else {}
            yield body, resp.content
            url, params = body.get("@odata.nextLink"), None
            if not url:
                return

    def _walk(self, kind: str) -> None:
        tune_transaction(first=True)
        for body, raw in self.pages(kind):
            tune_transaction()
            items = _page_items(body)
            if kind == "users":
                self._stage(items, raw)
            else:
                self._groups_page(items)
            next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
            if kind == "users":
                self.imp.users_next = next_link
                if delta_link:
                    self.imp.users_delta = delta_link
            else:
                self.imp.groups_next = next_link
                if delta_link:
                    self.imp.groups_delta = delta_link
            self.out.pages += 1
            self._commit(kind)
            if kind == "users" and len(self.staged) >= MERGE_CHUNK:
                self._merge()  # the reader goes on reading meanwhile

    def _commit(self, phase: str) -> None:
        self.on_page(self.out, phase)
        db.session.commit()
        if self._ending:
            # Core statements bypass the ORM hook that ends a disabled user's sessions: end them here, once the
            # change is committed (a sign-in racing with it is ended by the session store's own check).
            from sso.sessions import end_user_sessions

            end_user_sessions(self._ending)
            self._ending.clear()

    # -- groups ------------------------------------------------------------------------------------------------

    def _groups_page(self, items: list[dict[str, Any]]) -> None:
        relevant = set(self.imp.groups_key.split(","))
        touched: set[str] = set()
        for item in items:
            gid = item["id"]
            if gid not in relevant:
                continue
            if "@removed" in item:
                gone = list(db.session.scalars(select(MEMBERS.c.user_id).where(
                    MEMBERS.c.import_id == self.imp.id, MEMBERS.c.group_id == gid)))
                db.session.execute(delete(MEMBERS).where(MEMBERS.c.import_id == self.imp.id,
                                                         MEMBERS.c.group_id == gid))
                touched.update(gone)
                continue
            added, removed = [], []
            for member in item.get("members@delta") or []:
                if "user" not in str(member.get("@odata.type", "user")).lower():
                    continue
                (removed if "@removed" in member else added).append(member["id"])
            upsert(MEMBERS, [{"import_id": self.imp.id, "group_id": gid, "user_id": uid} for uid in added],
                    ["import_id", "group_id", "user_id"], [])
            if removed:
                db.session.execute(delete(MEMBERS).where(MEMBERS.c.import_id == self.imp.id,
                                                         MEMBERS.c.group_id == gid, MEMBERS.c.user_id.in_(removed)))
            touched.update(added)
            touched.update(removed)
            self.out.processed += len(added) + len(removed)
        if touched and self.imp.scope == UserImport.SCOPE_GROUPS:
            for chunk in chunks(sorted(touched), APPLY_BATCH):
                db.session.execute(update(MIRROR).where(MIRROR.c.import_id == self.imp.id,
                                                        MIRROR.c.object_id.in_(chunk)).values(dirty=True))

    # -- users -------------------------------------------------------------------------------------------------

    def _in_scope(self, object_ids: list[str]) -> set[str]:
        if self.imp.scope != UserImport.SCOPE_GROUPS:
            return set(object_ids)
        chosen = [g["id"] for g in self.imp.source_groups]
        if not chosen or not object_ids:
            return set()
        found: set[str] = set()
        for chunk in chunks(object_ids, APPLY_BATCH):  # a merge asks about up to MERGE_CHUNK users at once
            found.update(db.session.scalars(select(MEMBERS.c.user_id).distinct().where(
                MEMBERS.c.import_id == self.imp.id, MEMBERS.c.group_id.in_(chosen), MEMBERS.c.user_id.in_(chunk))))
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

    @property
    def staged(self) -> list[dict[str, Any]]:
        """The users staged and not yet merged (read back from the staging table when resuming)."""
        if self._staged is None:
            self._staged = [item for (body,) in db.session.execute(
                select(STAGED.c.body).where(STAGED.c.import_id == self.imp.id).order_by(STAGED.c.id))
                for item in _page_items(json.loads(body))]
        return self._staged

    def _stage(self, items: list[dict[str, Any]], raw: bytes) -> None:
        """Keep a delta page's users for the merge: in the staging table as Graph sent the page (committed with
        its next link) and in memory."""
        staged = self.staged  # read back what an earlier run staged first: this page is not in it
        body = raw.decode() if raw else json.dumps({"value": items}, separators=(",", ":"))
        db.session.execute(insert(STAGED).values(import_id=self.imp.id, body=body))
        staged.extend(items)
        self.out.processed += len(items)

    def _merge(self) -> None:
        """Apply the staged users to local users in one transaction, committed with the removal of their
        staged pages (a crash in between leaves them staged, and the next run merges them)."""
        tune_transaction()
        items = self.staged
        if items and self._fresh_round():
            items = self._create_fresh(items)
        for start in range(0, len(items), REPLAY_BATCH):
            self._users_page(list({item["id"]: item for item in items[start:start + REPLAY_BATCH]}.values()))
        db.session.execute(delete(STAGED).where(STAGED.c.import_id == self.imp.id))
        self._staged = []
        self._commit("merge")

    def _fresh_round(self) -> bool:
        """A full round into a tenant none of whose local users predates it (a first import, or its resumption):
        new users can go in without looking them up; their mirror rows come at the round's end."""
        if self._fresh is None:
            start = self.imp.last_full_sync_at
            self._fresh = bool(self.imp.full_round and start is not None and db.session.scalar(
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
            email = _email_of(item)
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
        round_no, import_id = self.imp.round, self.imp.id
        present = [item for item in items if "@removed" not in item]
        any_removed = len(present) < len(items)
        if self.imp.full_round or any_removed:
            cols = ("upn", "mail", "display_name", "account_enabled", "removed", "dirty", "seen_round")
        else:
            cols = ("upn", "mail", "display_name", "account_enabled", "removed", "seen_round")
        deferred = self._apply_present(present)
        mirror_rows = []
        for item in items:
            removed = "@removed" in item
            mirror_rows.append({
                "import_id": import_id, "object_id": item["id"], "upn": item.get("userPrincipalName") or "",
                "mail": item.get("mail"), "display_name": item.get("displayName") or "",
                "account_enabled": bool(item.get("accountEnabled", True)), "removed": removed, "dirty": removed,
                "seen_round": round_no})
        bulk("upsert", MIRROR, MIRROR_COLUMNS, mirror_rows, keys=("import_id", "object_id"), update_cols=cols)
        if deferred:
            db.session.execute(update(MIRROR).where(MIRROR.c.import_id == self.imp.id,
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
            if item["id"] in in_scope and (row is None or row.email != _email_of(item)):
                wanted_emails[item["id"]] = _email_of(item)
        holders = self._email_holders(wanted_emails.values())
        fields = set(self.imp.profile_fields)
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
            email = _email_of(item)
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
            MIRROR.c.import_id == self.imp.id, MIRROR.c.object_id == holder.object_id, MIRROR.c.removed.is_(False)))
        if alive is not None:
            return False
        db.session.execute(update(USERS).where(USERS.c.id == holder.id).values(
            email=f"departed.{holder.object_id}@invalid", updated_at=utcnow()))
        return True

    def _account_for_locals(self) -> None:
        """End of a full round: local users of the tenant without a mirror row were either created by this round's
        first-import fast path (which skips the mirror: they were seen) or never seen by the import at all (gone)."""
        start = self.imp.last_full_sync_at or utcnow()
        no_row = ~select(MIRROR.c.id).where(MIRROR.c.import_id == self.imp.id,
                                            MIRROR.c.object_id == USERS.c.object_id).exists()
        gone = USERS.c.created_at < start  # one pass over the tenant's users: seen ones and gone ones together
        rows = select(db.literal(self.imp.id), USERS.c.object_id, USERS.c.email, USERS.c.email,
                      USERS.c.display_name, USERS.c.active, gone, gone,
                      case((gone, 0), else_=db.literal(self.imp.round))).where(
            USERS.c.tenant_id == self.tenant, USERS.c.object_id.is_not(None), no_row).order_by(USERS.c.object_id)
        db.session.execute(insert(MIRROR).from_select(MIRROR_COLUMNS, rows))

    def _mark_unseen(self) -> None:
        """End of a full round: users not seen in it are gone from the source."""
        db.session.execute(update(MIRROR).where(MIRROR.c.import_id == self.imp.id,
                                                MIRROR.c.seen_round < self.imp.round,
                                                MIRROR.c.removed.is_(False)).values(removed=True, dirty=True))

    # -- apply -------------------------------------------------------------------------------------------------

    def _gone_query(self) -> Any:
        """Local users whose directory object was removed or left the scope (dirty mirror rows)."""
        in_groups = select(MEMBERS.c.user_id).where(
            MEMBERS.c.import_id == self.imp.id,
            MEMBERS.c.group_id.in_([g["id"] for g in self.imp.source_groups] or [""]))
        gone = MIRROR.c.removed.is_(True)
        if self.imp.scope == UserImport.SCOPE_GROUPS:
            gone = or_(gone, MIRROR.c.object_id.not_in(in_groups))
        return (select(USERS.c.id, USERS.c.email, USERS.c.display_name, USERS.c.active, MIRROR.c.id.label("mid"))
                .join(MIRROR, and_(MIRROR.c.object_id == USERS.c.object_id, USERS.c.tenant_id == self.tenant))
                .where(MIRROR.c.import_id == self.imp.id, MIRROR.c.dirty.is_(True), gone))

    def _check_guard(self) -> None:
        policy = self.imp.on_missing
        if policy == "nothing" or self.confirm:
            return
        query = self._gone_query()
        if policy == "disable":
            query = query.where(USERS.c.active.is_(True))
        pending = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        total = db.session.scalar(select(func.count(USERS.c.id)).where(
            USERS.c.tenant_id == self.tenant, USERS.c.object_id.is_not(None))) or 0
        if pending and pending * 100 > self.imp.removal_guard_percent * total:
            names = [r.display_name or r.email for r in db.session.execute(query.limit(NAMES_KEPT))]
            raise RemovalGuardTripped(pending, total, self.imp.removal_guard_percent, names)

    def _apply_dirty(self) -> None:
        self._check_guard()
        policy = self.imp.on_missing
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
        db.session.execute(delete(MIRROR).where(MIRROR.c.import_id == self.imp.id, MIRROR.c.removed.is_(True),
                                                MIRROR.c.dirty.is_(True)))
        after = 0
        while True:
            batch = db.session.execute(select(MIRROR).where(
                MIRROR.c.import_id == self.imp.id, MIRROR.c.dirty.is_(True), MIRROR.c.id > after)
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

    def _sync_bound_groups(self) -> None:
        """Local groups bound to an Office 365 group get its members; with override, exactly its members."""
        groups = db.session.scalars(select(Group).where(Group.datasource_id == self.ds.id,
                                                        Group.source_group_id.is_not(None))).all()
        for group in groups:
            desired = set(db.session.scalars(select(USERS.c.id).join(
                MEMBERS, and_(MEMBERS.c.user_id == USERS.c.object_id, USERS.c.tenant_id == self.tenant)).where(
                MEMBERS.c.import_id == self.imp.id, MEMBERS.c.group_id == group.source_group_id)))
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


def record_progress(run: TaskRun, requests_sent: Callable[[], int]) -> Callable[[Outcome, str], None]:
    """The `on_page` callback that copies an outcome onto a run (committed with the page)."""

    def on_page(outcome: Outcome, phase: str) -> None:
        for name in TaskRun.COUNTS:
            setattr(run, name, getattr(outcome, name))
        run.pages, run.processed, run.resyncs = outcome.pages, outcome.processed, outcome.resyncs
        run.graph_requests = requests_sent()
        run.phase = phase
        run.heartbeat_at = utcnow()

    return on_page
