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

import logging

from sqlalchemy import delete

from core.extensions import db
from core.models import utcnow
from imports.apply import ApplyPhase
from imports.delta import is_resync, page_items
from imports.groups import GroupsPhase
from imports.outcome import Outcome
from imports.sql import MEMBERS, tune_transaction
from imports.stage import ReadAndStage
from imports.state import reset_sync_state
from office365.errors import GraphError

log = logging.getLogger(__name__)

MERGE_CHUNK = 10_000  # staged users merged per transaction (they are held in memory until then)


class Importer(ReadAndStage, GroupsPhase, ApplyPhase):
    """One run of a datasource's import: the round, phase by phase (each phase is a module of its own)."""

    def run(self) -> Outcome:
        if self.user_import.phase != "idle":
            self.out.changed = None  # an earlier run began this round: what it read is not known here
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
                self.out.changed = None
                reset_sync_state(self.user_import)  # drops the staged pages of the expired round ...
                self._staged = self._fresh = None  # ... and what this run holds of them
                self._commit("resync")

    def _round(self) -> None:
        user_import = self.user_import
        if user_import.phase == "idle":
            user_import.round += 1
            user_import.full_round = user_import.users_delta is None
            if user_import.full_round:
                self.out.changed = None  # every user is read: no need to hold 100,000 ids to say so
            if user_import.full_round:
                user_import.last_full_sync_at = utcnow()  # when this full round started: see _account_for_locals
            key = ",".join(user_import.relevant_group_ids)
            if key != user_import.groups_key:
                user_import.groups_delta = user_import.groups_next = None
                db.session.execute(delete(MEMBERS).where(MEMBERS.c.import_id == user_import.id))
                user_import.groups_key = key
            user_import.phase = "groups"
            self._commit("groups")
        if user_import.phase == "groups":
            if user_import.groups_key:
                self._walk("groups")
            user_import.phase = "users"
            self._commit("users")
        if user_import.phase == "users":
            self._walk("users")
            user_import.phase = "merge"
            self._commit("merge")
        if user_import.phase == "merge":
            tune_transaction(first=True)
            self._merge()
            if user_import.full_round:
                self._account_for_locals()
                self._mark_unseen()
            user_import.phase = "apply"
            self._commit("apply")
        if user_import.phase == "apply":
            self._apply_dirty()
            self._sync_bound_groups()
            user_import.phase = "idle"
            user_import.removals_confirmed = False
            self._commit("done")

    def _walk(self, kind: str) -> None:
        tune_transaction(first=True)
        for body, raw in self.pages(kind):
            tune_transaction()
            items = page_items(body)
            if kind == "users":
                self.out.saw_changed(item["id"] for item in items)
                self._stage(items, raw)
            else:
                self._groups_page(items)
            next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
            if kind == "users":
                self.user_import.users_next = next_link
                if delta_link:
                    self.user_import.users_delta = delta_link
            else:
                self.user_import.groups_next = next_link
                if delta_link:
                    self.user_import.groups_delta = delta_link
            self.out.pages += 1
            self._commit(kind)
            if kind == "users" and len(self.staged) >= MERGE_CHUNK:
                self._merge()  # the reader goes on reading meanwhile
