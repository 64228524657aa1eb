"""The state one import run shares between its phases (see importer.py for the round that walks them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from core.extensions import db
from core.models import Datasource, Role
from core.user_lifecycle import users_ended
from imports.delta import page_items
from imports.models import UserImport
from imports.outcome import Outcome
from imports.reader import PrefetchingReader
from imports.sql import STAGED
from office365.graph import GraphClient

APPLY_BATCH = 500  # rows handled per statement (bounds IN lists) and, when applying, per commit


class ImportRun:
    """One run of a datasource's import. `on_page(outcome)` runs before each commit (progress, heartbeat)."""

    def __init__(self, user_import: UserImport, datasource: Datasource, client: GraphClient, *,
                 confirm_removals: bool = False, page_size: int = 999,
                 on_page: Callable[[Outcome, str], None] | None = None,
                 client_factory: Callable[[], GraphClient] | None = None) -> None:
        self.user_import, self.ds, self.client = user_import, datasource, client
        self.reader = PrefetchingReader(client_factory, page_size) if client_factory else None
        self._fresh: bool | None = None  # see _fresh_round
        self._staged: list[dict[str, Any]] | None = None  # users staged and not yet merged, in reading order
        self.tenant = datasource.tenant_id or ""
        self.confirm = confirm_removals or user_import.removals_confirmed
        self.page_size = page_size
        self.on_page = on_page or (lambda outcome, phase: None)
        self.out = Outcome()
        self._ending: set[int] = set()  # local users disabled or removed in this transaction: see _commit
        self.role_id = db.session.scalar(select(Role.id).where(Role.name == user_import.default_role)) or \
            db.session.scalar(select(Role.id).where(Role.name == Role.USER))

    def _commit(self, phase: str) -> None:
        self.on_page(self.out, phase)
        db.session.commit()
        if self._ending:
            # Core statements bypass the ORM hook that ends a disabled user's sessions: say so here, once the
            # change is committed (a sign-in racing with it is ended by the session store's own check).
            users_ended(self._ending)
            self._ending.clear()

    @property
    def staged(self) -> list[dict[str, Any]]:
        """The users staged and not yet merged (read back from the staging table when resuming)."""
        if self._staged is None:
            self._staged = [item for (body,) in db.session.execute(
                select(STAGED.c.body).where(STAGED.c.import_id == self.user_import.id).order_by(STAGED.c.id))
                for item in page_items(json.loads(body))]
        return self._staged
