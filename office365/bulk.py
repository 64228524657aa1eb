"""Bulk operations with per-item results: many users into a group, a licence for every member of a group.

Adding members uses `PATCH /groups/{id}` with `members@odata.bind` (20 per request). That PATCH is
all-or-nothing, so when a chunk is refused the same 20 users are sent again as 20 `POST .../members/$ref` in one
`$batch`, whose per-item answers say who was added, who already was a member and who does not exist: one bad
id never blocks the rest. Licences go through `$batch` (20 `assignLicense` per request).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from office365 import odata
from office365.errors import AlreadyMember, GraphError, GraphUnavailable, InvalidRequest, NotFound, Throttled
from office365.graph import BATCH_LIMIT, BatchRequest
from office365.licences import find_plan, licence_error
from office365.registry import BULK_OPERATIONS, GraphAccess, checked_object_id, operation
from office365.scopes import LICENCE_WRITE_SCOPES, MEMBER_WRITE_SCOPES

Outcome = Literal[
    "added", "already_member", "assigned", "already_assigned", "not_found", "invalid", "usage_location_required",
    "no_seats_left", "skipped", "failed", "not_attempted", "planned", "removed", "not_member", "unassigned",
    "not_assigned",
]
OK_OUTCOMES = frozenset({"added", "already_member", "assigned", "already_assigned", "planned", "removed", "not_member",
                         "unassigned", "not_assigned"})
#: Failures worth sending again later: Graph was throttling or unavailable, not a refusal of this object.
TRANSIENT_CODES = frozenset({"throttled", "graph_unavailable"})


@dataclass(frozen=True)
class ItemResult:
    id: str
    outcome: Outcome
    message: str
    request_id: str | None = None
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES

    @property
    def transient(self) -> bool:
        return self.outcome == "failed" and self.error_code in TRANSIENT_CODES


@dataclass
class BulkResult:
    items: list[ItemResult] = field(default_factory=list)
    graph_requests: int = 0  # HTTP requests sent to Graph for this bulk run

    def count(self, outcome: Outcome) -> int:
        return sum(1 for i in self.items if i.outcome == outcome)

    @property
    def failed(self) -> list[ItemResult]:
        return [i for i in self.items if not i.ok]


def _chunks(items: Sequence[str], size: int = BATCH_LIMIT) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def add_members(access: GraphAccess, group_id: str, user_ids: Iterable[str]) -> BulkResult:
    """Add users to a group, 20 per PATCH; per-user results. No permission check (see `add_users_to_group`)."""
    client = access.client
    gid = checked_object_id(group_id, "group_id")
    sent_before = client.requests_sent
    result = BulkResult()
    valid: list[str] = []
    for raw in dict.fromkeys(user_ids):
        if odata.is_guid(raw):
            valid.append(raw.lower())
        else:
            result.items.append(ItemResult(raw, "invalid", "Not a user object id; nothing was sent for it.",
                                           error_code="invalid_field"))
    stop: GraphError | None = None
    for chunk in _chunks(valid):
        if stop is not None:
            result.items.extend(
                ItemResult(u, "not_attempted", f"Not attempted: {stop.message}", error_code=stop.error_code)
                for u in chunk
            )
            continue
        try:
            resp = client.request(
                "PATCH",
                f"/groups/{gid}",
                json_body={"members@odata.bind": [client.absolute(f"/directoryObjects/{u}") for u in chunk]},
                idempotent=True,  # a repeat is refused as "already exist", then resolved per user below
            )
        except (AlreadyMember, InvalidRequest, NotFound) as exc:
            if isinstance(exc, NotFound) and gid in (exc.graph_message or "").lower():
                raise NotFound(
                    f"The group {gid} does not exist in the tenant; nobody was added. Check the group.",
                    status=404, code=exc.code, graph_message=exc.graph_message, request_id=exc.request_id,
                ) from exc
            result.items.extend(_add_one_by_one(access, gid, chunk))
            continue
        except (Throttled, GraphUnavailable) as exc:
            stop = exc
            result.items.extend(
                ItemResult(u, "failed", str(exc), exc.request_id, exc.error_code) for u in chunk
            )
            continue
        result.items.extend(
            ItemResult(u, "added", "Added to the group.", resp.request_id) for u in chunk
        )
    result.graph_requests = client.requests_sent - sent_before
    return result


def _add_one_by_one(access: GraphAccess, gid: str, chunk: Sequence[str]) -> list[ItemResult]:
    """Resolve a refused chunk: each user as its own `$ref` POST inside one `$batch`."""
    client = access.client
    items = [
        BatchRequest(str(i), "POST", f"/groups/{gid}/members/$ref",
                     body={"@odata.id": client.absolute(f"/directoryObjects/{u}")})
        for i, u in enumerate(chunk)
    ]
    out: list[ItemResult] = []
    for res in client.iter_batch(items, idempotent=True):
        uid = chunk[int(res.id)]
        err = res.error
        if err is None:
            out.append(ItemResult(uid, "added", "Added to the group.", res.request_id))
        elif isinstance(err, AlreadyMember):
            out.append(ItemResult(uid, "already_member", "Already a member of the group; nothing to do.",
                                  res.request_id))
        elif isinstance(err, NotFound):
            out.append(ItemResult(uid, "not_found", "No such user in the tenant (or the group is gone).",
                                  res.request_id, err.error_code))
        else:
            out.append(ItemResult(uid, "failed", str(err), res.request_id, err.error_code))
    return out


@operation("add_users_to_group", "Add Users to Group (bulk)", "write", MEMBER_WRITE_SCOPES,
           registry=BULK_OPERATIONS)
def add_users_to_group(access: GraphAccess, group_id: str, user_ids: Sequence[str]) -> BulkResult:
    """Add many users to a group: 20 per request, one result per user."""
    return add_members(access, group_id, user_ids)


@operation("assign_licence_to_group_members", "Assign Licence to Group Members (bulk)", "write",
           LICENCE_WRITE_SCOPES, registry=BULK_OPERATIONS)
def assign_licence_to_group_members(
    access: GraphAccess,
    group_id: str,
    sku_id: str,
    *,
    disabled_plans: Sequence[str] = (),
    dry_run: bool = False,
) -> BulkResult:
    """Assign a licence to every user member of a group, 20 per `$batch`, with one result per member.

    Checked first, without writing: members that are not users are skipped, users without a usage location
    or already holding the plan are reported, and only as many users as there are free seats are sent.
    `dry_run` stops after those checks and returns the plan (outcome "planned" for users that would be sent).
    """
    client = access.client
    gid = checked_object_id(group_id, "group_id")
    sku = checked_object_id(sku_id, "sku_id")
    disabled = [checked_object_id(p, "disabled_plan") for p in dict.fromkeys(disabled_plans)]
    sent_before = client.requests_sent
    plan = find_plan(access, sku)
    result = BulkResult()
    to_assign: list[str] = []
    seats = plan.available_units
    members = client.iter_items(
        f"/groups/{gid}/members",
        params={"$select": "id,userPrincipalName,usageLocation,assignedLicenses", "$top": 999},
    )
    for member in members:
        mid = member.get("id", "")
        kind = member.get("@odata.type", "#microsoft.graph.user")
        if kind != "#microsoft.graph.user":
            result.items.append(ItemResult(mid, "skipped", f"Not a user ({kind.rsplit('.', 1)[-1]}); skipped."))
        elif any((a.get("skuId") or "").lower() == sku for a in member.get("assignedLicenses") or []):
            result.items.append(ItemResult(mid, "already_assigned", f"Already holds {plan.friendly_name}."))
        elif not member.get("usageLocation"):
            result.items.append(ItemResult(
                mid, "usage_location_required",
                "No usage location: set one (two-letter country code) on the user, then run this again.",
                error_code="usage_location_required"))
        elif seats <= 0:
            result.items.append(ItemResult(
                mid, "no_seats_left", f"No seats left for {plan.friendly_name}; not sent.",
                error_code="no_seats_left"))
        else:
            seats -= 1
            to_assign.append(mid)
    if dry_run:
        result.items.extend(ItemResult(u, "planned", f"Will be assigned {plan.friendly_name}.") for u in to_assign)
        result.graph_requests = client.requests_sent - sent_before
        return result
    body = {"addLicenses": [{"skuId": sku, "disabledPlans": disabled}], "removeLicenses": []}
    batch = (BatchRequest(str(i), "POST", f"/users/{u}/assignLicense", body=body) for i, u in enumerate(to_assign))
    for res in client.iter_batch(batch, idempotent=True):
        uid = to_assign[int(res.id)]
        err = res.error
        if err is None:
            result.items.append(ItemResult(uid, "assigned", f"{plan.friendly_name} assigned.", res.request_id))
            continue
        mapped = licence_error(err, sku) if isinstance(err, InvalidRequest) else err
        outcome: Outcome = {
            "usage_location_required": "usage_location_required",
            "no_seats_left": "no_seats_left",
            "not_found": "not_found",
        }.get(getattr(mapped, "error_code", ""), "failed")  # type: ignore[assignment]
        result.items.append(ItemResult(uid, outcome, str(mapped), res.request_id, mapped.error_code))
    result.graph_requests = client.requests_sent - sent_before
    return result


# -- chunks of a bulk job (office365.bulk_preview decided what to send) --------------------------------------------


def remove_members(access: GraphAccess, group_id: str, user_ids: Sequence[str]) -> list[ItemResult]:
    """Remove users from a group: `DELETE .../members/{id}/$ref`, 20 per `$batch`; not a member is no failure."""
    gid = checked_object_id(group_id, "group_id")
    ids = [checked_object_id(u, "user_id") for u in user_ids]
    items = [BatchRequest(str(i), "DELETE", f"/groups/{gid}/members/{u}/$ref") for i, u in enumerate(ids)]
    out: list[ItemResult] = []
    for res in access.client.iter_batch(items, idempotent=True):
        uid, err = ids[int(res.id)], res.error
        if err is None:
            out.append(ItemResult(uid, "removed", "Removed from the group.", res.request_id))
        elif isinstance(err, NotFound):
            out.append(ItemResult(uid, "not_member", "Not a member (any more); nothing to do.", res.request_id))
        else:
            out.append(ItemResult(uid, "failed", str(err), res.request_id, err.error_code))
    return out


def change_licences(access: GraphAccess, sku_id: str, user_ids: Sequence[str], *, remove: bool = False,
                    disabled_plans: Sequence[str] = (), plan_name: str = "") -> list[ItemResult]:
    """Assign (or remove) one licence for each user, 20 `assignLicense` per `$batch`, one result per user."""
    sku = checked_object_id(sku_id, "sku_id")
    name = plan_name or sku
    ids = [checked_object_id(u, "user_id") for u in user_ids]
    if remove:
        body: dict = {"addLicenses": [], "removeLicenses": [sku]}
    else:
        body = {"addLicenses": [{"skuId": sku, "disabledPlans": list(disabled_plans)}], "removeLicenses": []}
    items = [BatchRequest(str(i), "POST", f"/users/{u}/assignLicense", body=body) for i, u in enumerate(ids)]
    out: list[ItemResult] = []
    for res in access.client.iter_batch(items, idempotent=True):
        uid, err = ids[int(res.id)], res.error
        if err is None:
            out.append(ItemResult(uid, "unassigned" if remove else "assigned",
                                  f"{name} {'removed' if remove else 'assigned'}.", res.request_id))
            continue
        mapped = licence_error(err, sku) if isinstance(err, InvalidRequest) else err
        code = getattr(mapped, "error_code", "")
        if remove and "does not have a corresponding license" in (err.graph_message or ""):
            out.append(ItemResult(uid, "not_assigned", f"Does not hold {name} (any more); nothing to do.",
                                  res.request_id))
            continue
        outcome: Outcome = {"usage_location_required": "usage_location_required", "no_seats_left": "no_seats_left",
                            "not_found": "not_found"}.get(code, "failed")  # type: ignore[assignment]
        out.append(ItemResult(uid, outcome, str(mapped), res.request_id, mapped.error_code))
    return out


def apply_chunk(access: GraphAccess, action: str, target_id: str, user_ids: Sequence[str], *,
                disabled_plans: Sequence[str] = (), plan_name: str = "") -> list[ItemResult]:
    """One chunk of a bulk job (at most 20 users, one Graph request when nothing is refused)."""
    if action == "add":
        return add_members(access, target_id, user_ids).items
    if action == "remove":
        return remove_members(access, target_id, user_ids)
    if action in ("assign-licence", "remove-licence"):
        return change_licences(access, target_id, user_ids, remove=action == "remove-licence",
                               disabled_plans=disabled_plans, plan_name=plan_name)
    raise ValueError(f"unknown bulk action {action!r}")
