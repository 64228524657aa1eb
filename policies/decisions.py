"""The decisions that were not "allowed", kept for the Decisions view: `record(...)` and `query(filters, page)`.

A denial repeats on every asset of a page, so a decision is written once per (session, rule, path, outcome) per
DEDUP_SECONDS in each process. Rows older than ACCESS_DECISIONS_RETENTION_DAYS (30 by default) are deleted now and
then by `record` (and by `prune()`). No token, cookie or secret is stored: the session is a short hash of its id's
hash, the user their e-mail.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from core.audit import plain_json, storable
from core.extensions import db
from core.models import utcnow
from policies.evaluate import Decision, RequestFacts
from policies.models import AccessDecision

log = logging.getLogger(__name__)
DEDUP_SECONDS = 60.0
DEDUP_LIMIT = 20000
DEFAULT_RETENTION_DAYS = 30
PRUNE_ONE_IN = 200
PER_PAGE = 50

_recent: OrderedDict[tuple[str, ...], float] = OrderedDict()
_recent_lock = threading.Lock()


def session_label(id_hash: str) -> str:
    """A short, non-reversible label of a session (its id's hash, hashed again and cut)."""
    return hashlib.sha256(("decision:" + id_hash).encode()).hexdigest()[:12] if id_hash else ""


def _seen_recently(key: tuple[str, ...], now: float) -> bool:
    with _recent_lock:
        seen = _recent.get(key)
        if seen is not None and now - seen < DEDUP_SECONDS:
            return True
        _recent[key] = now
        _recent.move_to_end(key)
        while len(_recent) > DEDUP_LIMIT:
            _recent.popitem(last=False)
        return False


def forget_recent() -> None:
    with _recent_lock:
        _recent.clear()


def record(decision: Decision, facts: RequestFacts, identity: Mapping[str, Any] | None,
           session_hash: str = "", user_id: int | None = None) -> bool:
    """Store a non-allowed decision (allowed and public ones are not kept); False when not written (allowed,
    a repeat within DEDUP_SECONDS, or a database problem, which is logged and never fails the request)."""
    if decision.outcome in ("allowed", "public"):
        return False
    identity = identity or {}
    label = str(identity.get("email") or identity.get("user") or "")
    key = (session_hash or label or (facts.client_ip or ""), decision.rule_id, facts.host, facts.path,
           decision.outcome, decision.criterion)
    if _seen_recently(key, time.monotonic()):
        return False
    row = AccessDecision(
        user_id=user_id, user_label=storable(label, 320), session_hash=storable(session_hash, 16),
        host=storable(facts.host, 255), path=storable(facts.path, 2048), method=storable(facts.method, 16),
        rule_id=storable(decision.rule_id, 64), rule_name=storable(decision.rule_name, 256),
        outcome=storable(decision.outcome, 16), criterion=storable(decision.criterion, 64),
        reason=storable(decision.reason, 512), granting_groups=plain_json(list(decision.granting_groups)),
        policy_version=decision.policy_version)
    try:
        db.session.add(row)
        if random.randrange(PRUNE_ONE_IN) == 0:  # noqa: S311 - not security: spread the pruning
            _prune_rows()
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("could not record an access decision")
        return False
    return True


def retention_days() -> int:
    return int(current_app.config.get("ACCESS_DECISIONS_RETENTION_DAYS") or DEFAULT_RETENTION_DAYS)


def _prune_rows() -> int:
    cutoff = utcnow() - timedelta(days=retention_days())
    result = db.session.execute(delete(AccessDecision).where(AccessDecision.at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def prune() -> int:
    """Delete the decisions older than the retention; commits. Returns how many went."""
    removed = _prune_rows()
    db.session.commit()
    return removed


@dataclass(frozen=True)
class DecisionPage:
    items: list[AccessDecision]
    total: int
    page: int
    pages: int
    per_page: int


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def query(filters: Mapping[str, Any] | None = None, page: int = 1, per_page: int = PER_PAGE) -> DecisionPage:
    """Newest first. Filters (all optional, combined): user (part of the e-mail), host (exact), rule (rule id, or
    part of its name), outcome (denied | not_signed_in | step_up), since / until (datetimes)."""
    filters = filters or {}
    conditions = []
    user = str(filters.get("user") or "").strip()
    if user:
        conditions.append(AccessDecision.user_label.ilike(_like(user), escape="\\"))
    host = str(filters.get("host") or "").strip().lower()
    if host:
        conditions.append(AccessDecision.host == host)
    rule = str(filters.get("rule") or "").strip()
    if rule:
        conditions.append(or_(AccessDecision.rule_id == rule, AccessDecision.rule_name.ilike(_like(rule),
                                                                                                 escape="\\")))
    outcome = str(filters.get("outcome") or "").strip()
    if outcome:
        conditions.append(AccessDecision.outcome == outcome)
    if filters.get("since") is not None:
        conditions.append(AccessDecision.at >= filters["since"])
    if filters.get("until") is not None:
        conditions.append(AccessDecision.at < filters["until"])
    per_page = max(1, min(int(per_page), 500))
    total = db.session.scalar(select(func.count()).select_from(AccessDecision).where(*conditions)) or 0
    pages = max(1, -(-total // per_page))
    page = max(1, min(int(page), pages))
    items = list(db.session.scalars(select(AccessDecision).where(*conditions)
                                    .order_by(AccessDecision.at.desc(), AccessDecision.id.desc())
                                    .offset((page - 1) * per_page).limit(per_page)))
    return DecisionPage(items, total, page, pages, per_page)
