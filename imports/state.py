"""A datasource's import record and its sync state (delta links, staged pages)."""

from __future__ import annotations

from sqlalchemy import delete, select

from core.extensions import db
from core.models import Datasource
from imports.models import UserImport
from imports.sql import STAGED


def has_import(datasource: Datasource) -> bool:
    """Imported users, bound groups and sync state are keyed by the datasource's tenant: it may not change then."""
    return db.session.scalar(select(UserImport.id).where(UserImport.datasource_id == datasource.id)) is not None


def import_for(datasource: Datasource) -> UserImport:
    """The datasource's import settings (created with the defaults the first time)."""
    user_import = db.session.scalar(select(UserImport).where(UserImport.datasource_id == datasource.id))
    if user_import is None:
        user_import = UserImport(datasource_id=datasource.id)
        db.session.add(user_import)
        db.session.flush()
    return user_import


def reset_sync_state(user_import: UserImport) -> None:
    """Forget the delta links: the next run is a full round (settings changed, or the token expired)."""
    user_import.phase, user_import.full_round = "idle", True
    user_import.users_next = user_import.users_delta = user_import.groups_next = user_import.groups_delta = None
    user_import.groups_key = ""
    db.session.execute(delete(STAGED).where(STAGED.c.import_id == user_import.id))
