"""Request access: a person denied by an access rule asks to join a group that would let them in.

The request names that group (one of the decision's `granting_groups`), the host and path, and the requester. It
is approved or refused by an Administrator or by one of the Office 365 group's owners (read from Graph through the
datasource: `GET /groups/{id}/owners`). Approval runs Add User to Group through `datasources.service.run`, audited
exactly like the Office 365 pages' own Add User to Group; a Graph failure leaves the request pending with the
reason shown. The requester sees the decision on their next visit (home page and /auth/denied), once.

The denied page's **Request access** button posts to `sso.denied`; the approvers' pages are
`admin/access_requests.py`.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from core import audit
from core.extensions import db
from core.models import Datasource, Role, User, utcnow
from datasources.service import Caller, graph_access, run
from office365 import groups as o365_groups
from office365.errors import Office365Error
from office365.operations import MembershipResult, add_user_to_group
from sso.models import AccessRequest, SsoProvider

log = logging.getLogger(__name__)
MAX_OWNERS = 100


def datasource_for_identity(identity: dict[str, Any] | None) -> Datasource | None:
    """The Office 365 datasource that can add this person to a group: their sign-in provider's, else the one of
    their tenant."""
    identity = identity or {}
    provider = db.session.scalar(select(SsoProvider).filter_by(name=identity.get("provider"))) \
        if identity.get("provider") else None
    if provider is not None and provider.datasource_id:
        found = db.session.get(Datasource, provider.datasource_id)
        if found is not None and found.tenant_id:
            return found
    if identity.get("tid"):
        return db.session.scalar(select(Datasource).where(
            Datasource.kind == "office365", Datasource.tenant_id == identity["tid"]).order_by(Datasource.id).limit(1))
    return None


def can_request(user: User, identity: dict[str, Any] | None) -> bool:
    """Only an Office 365 user (object id in the datasource's tenant) can be added to a group."""
    datasource = datasource_for_identity(identity)
    return bool(datasource is not None and user.object_id and user.tenant_id == datasource.tenant_id)


def pending_request(user: User, group_id: str) -> AccessRequest | None:
    return db.session.scalar(select(AccessRequest).filter_by(requester_id=user.id, group_id=group_id,
                                                             status=AccessRequest.PENDING))


def owners_of(datasource: Datasource, group_id: str) -> list[str] | None:
    """The group's owners' object ids from Graph (None: Graph could not say)."""
    try:
        access = graph_access(datasource)
        try:
            return [o.id for o in o365_groups.group_owners(access, group_id, limit=MAX_OWNERS) if o.kind == "user"]
        finally:
            access.client.close()
    except Office365Error as exc:
        log.warning("access request: owners of %s not read: %s", group_id, type(exc).__name__)
        return None


def open_request(user: User, identity: dict[str, Any], group: dict[str, str], *, host: str, path: str,
                 rule_name: str, reason: str) -> tuple[AccessRequest, bool]:
    """The pending request of this person for this group: the existing one, or a new one (True)."""
    existing = pending_request(user, group["id"])
    if existing is not None:
        return existing, False
    datasource = datasource_for_identity(identity)
    assert datasource is not None
    owners = owners_of(datasource, group["id"])
    found = AccessRequest(requester_id=user.id, requester_label=user.email[:320], datasource_id=datasource.id,
                          group_id=group["id"], group_name=str(group.get("name") or group["id"])[:256],
                          host=host[:255], path=path[:2048], rule_name=rule_name[:256], reason=reason[:512],
                          approver_ids=owners or [])
    db.session.add(found)
    audit.record("access_request.create", f"group {found.group_name} ({found.group_id})", actor=user.email,
                 datasource=datasource.name, host=host, path=path, rule=rule_name, reason=reason,
                 owners_read=owners is not None)
    try:
        db.session.commit()
    except IntegrityError:  # the same request sent twice at once: the other one won
        db.session.rollback()
        return pending_request(user, group["id"]), False  # type: ignore[return-value]
    return found, True


def is_administrator(user: User) -> bool:
    return user.has_any_role(Role.ADMINISTRATOR)


def listed_for(user: User, req: AccessRequest) -> bool:
    """Whether `user` sees this request on their Access requests page (ownership as read at request time)."""
    if is_administrator(user):
        return True
    datasource = db.session.get(Datasource, req.datasource_id) if req.datasource_id else None
    return bool(user.object_id and datasource is not None and user.tenant_id == datasource.tenant_id
                and user.object_id in (req.approver_ids or []) and user.id != req.requester_id)


def may_decide(user: User, req: AccessRequest) -> tuple[bool, str]:
    """Administrators, or an owner of the group now (read again from Graph). (allowed, why not)."""
    if is_administrator(user):
        return True, ""
    datasource = db.session.get(Datasource, req.datasource_id) if req.datasource_id else None
    if datasource is None or not user.object_id or user.tenant_id != datasource.tenant_id:
        return False, "Only an Administrator or an owner of the group can decide this request."
    if user.id == req.requester_id:
        return False, "You cannot approve your own request: another owner or an Administrator must."
    owners = owners_of(datasource, req.group_id)
    if owners is None:
        return False, ("Office 365 could not be asked who owns this group right now, so your approval cannot be "
                       "checked. Try again in a moment.")
    req.approver_ids = owners
    if user.object_id not in owners:
        return False, f"You are no longer an owner of the group {req.group_name}."
    return True, ""


def for_approver(user: User, *, status: str | None = AccessRequest.PENDING, limit: int = 200) -> list[AccessRequest]:
    statement = select(AccessRequest).order_by(AccessRequest.created_at.desc(), AccessRequest.id.desc())
    if status == AccessRequest.PENDING:
        statement = statement.where(AccessRequest.status == AccessRequest.PENDING)
    else:
        statement = statement.where(AccessRequest.status != AccessRequest.PENDING)
    rows = db.session.scalars(statement.limit(limit * 5 if not is_administrator(user) else limit))
    return [r for r in rows if listed_for(user, r)][:limit]


def pending_count_for(user: User) -> int:
    if not user.is_authenticated:
        return 0
    if not is_administrator(user) and not user.object_id:
        return 0
    return len(for_approver(user, limit=100))


def approve(req: AccessRequest, approver: User) -> tuple[bool, str]:
    """Add the requester to the group through the datasource (audited as Add User to Group). (done, message)."""
    requester = db.session.get(User, req.requester_id)
    datasource = db.session.get(Datasource, req.datasource_id) if req.datasource_id else None
    if requester is None or datasource is None or not requester.object_id:
        return False, "The requester or the data source of this request no longer exists."
    summary = {"group_id": req.group_id, "user_id": requester.object_id, "access_request": req.id}
    target = f"group {req.group_id} / user {requester.object_id}"
    try:
        result: MembershipResult = run(datasource, Caller(approver), "add_user_to_group", target, summary,
                                       lambda access: add_user_to_group(access, req.group_id, requester.object_id),
                                       outcome_of=lambda r: {"result": r.outcome})
    except Office365Error as exc:
        req.message = f"Add User to Group failed: {exc}"[:1024]
        audit.record("access_request.approve", f"group {req.group_name} ({req.group_id})", outcome="failure",
                     actor=approver.email, requester=req.requester_label, error=str(exc)[:300])
        db.session.commit()
        return False, (f"{requester.email} could not be added to {req.group_name}: {exc} The request stays "
                       "pending; try again later.")
    req.status, req.decided_by, req.decided_at, req.message = AccessRequest.APPROVED, approver.email, utcnow(), ""
    audit.record("access_request.approve", f"group {req.group_name} ({req.group_id})", actor=approver.email,
                 requester=req.requester_label, result=result.outcome)
    db.session.commit()
    already = " (they were already a member)" if result.outcome == "already_member" else ""
    return True, f"Approved: {requester.email} is now a member of {req.group_name}{already}."


def refuse(req: AccessRequest, approver: User, note: str) -> None:
    req.status, req.decided_by, req.decided_at = AccessRequest.REFUSED, approver.email, utcnow()
    req.message = note.strip()[:1024]
    audit.record("access_request.refuse", f"group {req.group_name} ({req.group_id})", actor=approver.email,
                 requester=req.requester_label, note=req.message[:300])
    db.session.commit()


def unseen_outcomes(user: User, *, mark: bool = True) -> list[AccessRequest]:
    """The decisions on this person's requests they have not been shown yet (marked shown when `mark`)."""
    rows = list(db.session.scalars(select(AccessRequest).where(
        AccessRequest.requester_id == user.id, AccessRequest.status != AccessRequest.PENDING,
        AccessRequest.seen_at.is_(None)).order_by(AccessRequest.decided_at)))
    if rows and mark:
        for row in rows:
            row.seen_at = utcnow()
        db.session.commit()
    return rows


def my_requests(user: User, group_ids: list[str]) -> dict[str, AccessRequest]:
    """This person's latest request per group, for the denied page."""
    if not group_ids:
        return {}
    rows = db.session.scalars(select(AccessRequest).where(
        AccessRequest.requester_id == user.id, AccessRequest.group_id.in_(group_ids),
        or_(AccessRequest.status == AccessRequest.PENDING, AccessRequest.seen_at.is_(None)))
        .order_by(AccessRequest.created_at))
    return {row.group_id: row for row in rows}
