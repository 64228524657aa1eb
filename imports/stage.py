"""Read and stage: the delta pages from where the round stands, each users page kept as Graph sent it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import insert

from core.extensions import db
from imports.delta import GROUP_SELECT, USER_SELECT
from imports.run import ImportRun
from imports.sql import STAGED


class ReadAndStage(ImportRun):
    def _first_url(self, kind: str) -> tuple[str, dict[str, str] | None]:
        user_import = self.user_import
        if kind == "users":
            if user_import.users_next:
                return user_import.users_next, None
            if user_import.users_delta and not user_import.full_round:
                return user_import.users_delta, None
            return "/users/delta", {"$select": USER_SELECT}
        if user_import.groups_next:
            return user_import.groups_next, None
        if user_import.groups_delta:
            return user_import.groups_delta, None
        ids = user_import.groups_key.split(",")
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

    def _stage(self, items: list[dict[str, Any]], raw: bytes) -> None:
        """Keep a delta page's users for the merge: in the staging table as Graph sent the page (committed with
        its next link) and in memory."""
        staged = self.staged  # read back what an earlier run staged first: this page is not in it
        body = raw.decode() if raw else json.dumps({"value": items}, separators=(",", ":"))
        db.session.execute(insert(STAGED).values(import_id=self.user_import.id, body=body))
        staged.extend(items)
        self.out.processed += len(items)
