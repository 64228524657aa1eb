"""Dry run of a datasource's import: read what changed and report it by name, writing nothing.

It reads the same delta the next run would (from the stored deltaLink, else a full round) and compares each
user with the local one matched by (tenant id, object id); nothing is stored, not even the new deltaLink.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from core.extensions import db
from core.models import Datasource, User
from imports.delta import GROUP_SELECT, USER_SELECT, email_of, is_resync
from imports.models import SourceUser, UserImport
from imports.outcome import Outcome
from office365.errors import GraphError
from office365.graph import GraphClient

USERS = User.__table__


class DryRun:
    def __init__(self, user_import: UserImport, datasource: Datasource, client: GraphClient, *, page_size: int = 999,
                 on_page: Callable[[Outcome, str], None] | None = None) -> None:
        self.user_import, self.ds, self.client, self.page_size = user_import, datasource, client, page_size
        self.tenant = datasource.tenant_id or ""
        self.on_page = on_page or (lambda outcome, phase: None)
        self.out = Outcome()
        self.gone: dict[int, Any] = {}

    def _pages(self, url: str, params: dict[str, str] | None):  # type: ignore[no-untyped-def]
        while url:
            body = self.client.request("GET", url, params=params,
                                       headers={"Prefer": f"odata.maxpagesize={self.page_size}"}).body or {}
            yield body
            url, params = body.get("@odata.nextLink"), None

    def _scope_members(self) -> set[str] | None:
        """Current members of the chosen groups (None: every user is in scope)."""
        if self.user_import.scope != UserImport.SCOPE_GROUPS:
            return None
        ids = [g["id"] for g in self.user_import.source_groups]
        members: set[str] = set()
        for start in range(0, len(ids), 50):
            chunk = ids[start:start + 50]
            params = {"$select": GROUP_SELECT, "$filter": " or ".join(f"id eq '{gid}'" for gid in chunk)}
            for body in self._pages("/groups/delta", params):
                for group in body.get("value") or []:
                    for member in group.get("members@delta") or []:
                        if "@removed" not in member and "user" in str(member.get("@odata.type", "user")).lower():
                            members.add(member["id"])
                self.out.pages += 1
        return members

    def run(self) -> Outcome:
        scope = self._scope_members()
        start = self.user_import.users_delta if self.user_import.users_delta else None
        try:
            seen = self._users(start, scope)
        except GraphError as exc:
            if start is None or not is_resync(exc):
                raise
            self.out.resyncs += 1
            self.out = Outcome(pages=self.out.pages, resyncs=1)
            self.gone = {}
            start = None
            seen = self._users(None, scope)
        full = start is None
        self._locals_left_behind(seen if full else None, scope)
        if scope is not None and not full:
            self._new_members(scope, seen)
        self._report_gone()
        return self.out

    def _users(self, start: str | None, scope: set[str] | None) -> set[str]:
        seen: set[str] = set()
        url, params = (start, None) if start else ("/users/delta", {"$select": USER_SELECT})
        for body in self._pages(url, params):
            items = list({i["id"]: i for i in body.get("value") or [] if "id" in i}.values())
            local = {row.object_id: row for row in db.session.execute(
                select(USERS.c.id, USERS.c.object_id, USERS.c.email, USERS.c.display_name, USERS.c.active)
                .where(USERS.c.tenant_id == self.tenant, USERS.c.object_id.in_([i["id"] for i in items])))}
            for item in items:
                seen.add(item["id"])
                self._compare(item, local.get(item["id"]), scope)
            self.out.pages += 1
            self.out.processed += len(items)
            self.on_page(self.out, "dry run")
        return seen

    def _compare(self, item: dict[str, Any], row: Any, scope: set[str] | None) -> None:
        name = item.get("displayName") or item.get("userPrincipalName") or item["id"]
        if "@removed" in item or (scope is not None and item["id"] not in scope):
            if row is not None:
                self.gone[row.id] = row
            return
        if row is None:
            self.out.note("created", name)
            return
        fields = set(self.user_import.profile_fields)
        changed = ("display_name" in fields and (item.get("displayName") or "") != row.display_name) or \
            ("email" in fields and email_of(item) != row.email) or \
            ("active" in fields and bool(item.get("accountEnabled", True)) != row.active)
        if changed:
            self.out.note("updated", name)
        else:
            self.out.unchanged += 1

    def _locals_left_behind(self, seen: set[str] | None, scope: set[str] | None) -> None:
        """Full round: local users not seen are gone; with a group scope, local users outside it too."""
        if seen is None and scope is None:
            return
        after = 0
        while True:
            rows = db.session.execute(select(USERS.c.id, USERS.c.object_id, USERS.c.email, USERS.c.display_name,
                                             USERS.c.active).where(USERS.c.tenant_id == self.tenant,
                                                                   USERS.c.object_id.is_not(None),
                                                                   USERS.c.id > after)
                                      .order_by(USERS.c.id).limit(1000)).all()
            if not rows:
                return
            for row in rows:
                if (seen is not None and row.object_id not in seen) or (scope is not None
                                                                        and row.object_id not in scope):
                    self.gone[row.id] = row
            after = rows[-1].id

    def _new_members(self, scope: set[str], seen: set[str]) -> None:
        """Incremental round with a group scope: members who joined but did not change themselves."""
        known = set(db.session.scalars(select(USERS.c.object_id).where(USERS.c.tenant_id == self.tenant,
                                                                       USERS.c.object_id.in_(scope))))
        for oid in sorted(scope - known - seen):
            mirror = db.session.scalar(select(SourceUser).where(SourceUser.import_id == self.user_import.id,
                                                                SourceUser.object_id == oid))
            self.out.note("created", mirror.display_name if mirror else oid)

    def _report_gone(self) -> None:
        policy = self.user_import.on_missing
        pending = 0
        for row in self.gone.values():
            label = row.display_name or row.email
            if policy == "remove":
                self.out.note("removed", label)
                pending += 1
            elif policy == "disable" and row.active:
                self.out.note("disabled", label)
                pending += 1
        total = db.session.scalar(select(db.func.count(USERS.c.id)).where(
            USERS.c.tenant_id == self.tenant, USERS.c.object_id.is_not(None))) or 0
        percent = self.user_import.removal_guard_percent
        if pending and pending * 100 > percent * total:
            self.out.error_messages.insert(0, f"The removal guard would stop this run: {pending} of {total} imported "
                                              f"users would be disabled or removed (more than {percent}%); an "
                                              "administrator must confirm.")
