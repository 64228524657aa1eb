"""What a bulk change would do, read with as few Graph requests as Microsoft allows (docs/microsoft.md §7).

Users are looked up 15 ids per `$filter=id in (...)` and 20 of those per `$batch` (300 users per request).
Whether they are members of the target group is read from whichever is cheaper: the group's member ids (999 per
page, one page after the other) or the group's members filtered on those ids (300 users per `$batch`). Licence
state comes with the user (`assignedLicenses`, `usageLocation`). Batches run a few at a time, and the whole
preview stops at a deadline so a page never waits on a throttling Graph for long: the caller says what happened
and offers to try again.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote

from office365 import odata
from office365.errors import GraphError, GraphUnavailable, Throttled
from office365.graph import BATCH_LIMIT, BatchRequest, BatchResult, GraphClient
from office365.groups import get_group
from office365.licences import find_plan
from office365.registry import GraphAccess, checked_object_id

Action = Literal["add", "remove", "assign-licence", "remove-licence"]
ACTIONS: tuple[Action, ...] = ("add", "remove", "assign-licence", "remove-licence")
GROUP_ACTIONS = ("add", "remove")
ID_IN_LIMIT = 15  # values in one `id in (...)` filter
PREVIEW_SELECT = "id,displayName,userPrincipalName,usageLocation,assignedLicenses"
CONCURRENT_BATCHES = 4
SAFE = "',()@ "  # left as they are in a $batch item's URL (Graph decodes the rest)
_UPN = re.compile(r"^[^\s/\\?#%@']+@[^\s/\\?#%@']+$")

#: Why an object needs no change (or cannot be changed), in words, by reason.
REASONS = {
    "already_member": "already a member", "not_member": "not a member", "already_assigned": "already hold it",
    "not_assigned": "do not hold it", "not_found": "not found in the tenant", "not_a_user": "not users",
    "usage_location_required": "have no usage location", "no_seats_left": "beyond the seats left",
    "invalid": "not object ids",
}


class DeadlineExceeded(GraphUnavailable):
    """The preview did not finish within its deadline (Graph throttling or slow); nothing was written."""

    error_code = "preview_deadline"
    hint = "Nothing was changed. Try again in a minute: Microsoft Graph is slow or throttling this tenant."


@dataclass(frozen=True)
class Planned:
    """One object the bulk job would change."""

    id: str
    label: str


@dataclass
class Preview:
    action: Action
    target_id: str
    target_name: str
    changes: list[Planned] = field(default_factory=list)
    unchanged: Counter[str] = field(default_factory=Counter)  # reason -> how many need no change / cannot
    graph_requests: int = 0
    seats_left: int | None = None

    @property
    def selected(self) -> int:
        return len(self.changes) + sum(self.unchanged.values())


def label_of(user: dict[str, Any]) -> str:
    name, upn = user.get("displayName") or "", user.get("userPrincipalName") or ""
    return f"{name} ({upn})" if name and upn else (name or upn or user.get("id", ""))


class PinnedTokens:
    """The client's token source as seen from worker threads: the token is fetched on the calling thread (the
    datasource's source needs the app context there) and shared; `renew` fetches it again (cheap: cached)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.token: str | None = None
        self.lock = threading.Lock()
        self.renew()

    @property
    def granted_scopes(self) -> frozenset[str]:
        return frozenset(self.source.granted_scopes)

    def renew(self) -> None:
        token = self.source.access_token()
        with self.lock:
            self.token = token

    def access_token(self, *, force_refresh: bool = False) -> str:
        if force_refresh and threading.current_thread() is threading.main_thread():
            self.token = self.source.access_token(force_refresh=True)
        with self.lock:
            return self.token or ""


def pin_tokens(client: GraphClient) -> PinnedTokens:
    """Make `client` usable from several threads at once (see PinnedTokens); idempotent."""
    if not isinstance(client.tokens, PinnedTokens):
        client.tokens = PinnedTokens(client.tokens)
    return client.tokens


class Budget:
    """One deadline for the whole preview: every Graph call gets only what is left of it."""

    def __init__(self, client: GraphClient, seconds: float | None) -> None:
        self.client, self.seconds = client, seconds
        self.stop_at = None if seconds is None else time.monotonic() + seconds
        if seconds is not None:
            client.retry = replace(client.retry, deadline=seconds, backoff_cap=min(client.retry.backoff_cap, 2.0))

    def check(self) -> None:
        if self.stop_at is not None and time.monotonic() >= self.stop_at:
            raise DeadlineExceeded(
                f"Microsoft Graph did not answer the preview within {self.seconds:g} s (it may be throttling "
                "this tenant). Nothing was changed. Try again in a minute.")


def run_batches(client: GraphClient, items: Sequence[BatchRequest], budget: Budget | None = None,
                concurrency: int = CONCURRENT_BATCHES) -> list[BatchResult]:
    """`items` through `$batch`, 20 per request, `concurrency` requests at a time; results in item order."""
    chunks = [items[i:i + BATCH_LIMIT] for i in range(0, len(items), BATCH_LIMIT)]

    def one(chunk: Sequence[BatchRequest]) -> list[BatchResult]:
        if budget is not None:
            budget.check()
        return client.batch(chunk, idempotent=True)

    if len(chunks) <= 1 or concurrency <= 1:
        return [r for chunk in chunks for r in one(chunk)]
    pin_tokens(client)
    with ThreadPoolExecutor(max_workers=min(concurrency, len(chunks))) as pool:
        return [r for part in pool.map(one, chunks) for r in part]


def _quoted(values: Iterable[str]) -> str:
    return ",".join(odata.string_literal(v) for v in values)


def lookup_users(client: GraphClient, keys: Sequence[str], budget: Budget | None = None,
                 select: str = PREVIEW_SELECT, prop: str = "id") -> dict[str, dict[str, Any]]:
    """The users among `keys` (lower-case object ids, or UPNs with `prop="userPrincipalName"`) that exist, by
    lower-case key: 15 per `in` filter, 300 per Graph request."""
    groups = [keys[i:i + ID_IN_LIMIT] for i in range(0, len(keys), ID_IN_LIMIT)]
    items = [BatchRequest(str(n), "GET",
                          f"/users?$filter={prop} in ({quote(_quoted(g), safe=SAFE)})&$select={select}"
                          f"&$top={ID_IN_LIMIT}")
             for n, g in enumerate(groups)]
    found: dict[str, dict[str, Any]] = {}
    for result in run_batches(client, items, budget):
        if result.error is not None:
            raise result.error
        for user in (result.body or {}).get("value") or []:
            found[str(user.get(prop, "")).lower()] = user
    return found


def group_member_ids(client: GraphClient, group_id: str, budget: Budget | None = None) -> set[str]:
    """Every direct member's id, 999 per page."""
    ids: set[str] = set()
    for page in client.iter_pages(f"/groups/{group_id}/members", params={"$select": "id", "$top": 999}):
        if budget is not None:
            budget.check()
        ids.update(str(m.get("id", "")).lower() for m in page.items)
    return ids


def members_among(client: GraphClient, group_id: str, user_ids: Sequence[str],
                  budget: Budget | None = None) -> set[str]:
    """Which of `user_ids` are direct members of the group: the members cast to users, filtered on `id in (...)`
    (an advanced query, docs/microsoft.md §5.11), 15 ids per request and 20 of those per `$batch`."""
    groups = [user_ids[i:i + ID_IN_LIMIT] for i in range(0, len(user_ids), ID_IN_LIMIT)]
    items = [BatchRequest(str(n), "GET", f"/groups/{group_id}/members/microsoft.graph.user?$filter=id in "
                                         f"({quote(_quoted(g), safe=SAFE)})&$select=id&$count=true&$top={ID_IN_LIMIT}",
                          headers={"ConsistencyLevel": "eventual"})
             for n, g in enumerate(groups)]
    members: set[str] = set()
    for result in run_batches(client, items, budget):
        if result.error is not None:
            raise result.error
        members.update(str(m.get("id", "")).lower() for m in (result.body or {}).get("value") or [])
    return members


def _group_and_size(access: GraphAccess, group_id: str) -> tuple[Any, int | None]:
    """The group (it must exist) and its member count (`/members/$count`, an advanced query), asked at once."""

    def size() -> int | None:
        try:
            body = access.client.request("GET", f"/groups/{group_id}/members/$count", advanced=True).body
            return int(str(body).strip())
        except (GraphError, ValueError):
            return None  # unknown (or no such group: get_group says so): the members are read filtered on ids

    with ThreadPoolExecutor(max_workers=1) as pool:
        counted = pool.submit(size)
        group = get_group(access, group_id, with_member_count=False)
        return group, counted.result()


def _membership(client: GraphClient, group_id: str, member_count: int | None, user_ids: list[str],
                budget: Budget) -> Callable[[], set[str]]:
    """The cheaper way to learn which users are members: all member ids (999 a page, read one after the other),
    or the members filtered on the users' ids (300 a request, a few requests at once)."""
    pages = math.ceil((member_count if member_count is not None else 10**9) / 999) or 1
    if pages <= math.ceil(len(user_ids) / (ID_IN_LIMIT * BATCH_LIMIT)):
        return lambda: group_member_ids(client, group_id, budget)
    return lambda: members_among(client, group_id, user_ids, budget)


def preview(access: GraphAccess, action: Action, target: str, *, ids: Sequence[str] | None = None,
            users: Iterable[dict[str, Any]] | None = None, deadline: float | None = None) -> Preview:
    """What `action` on `target` (group id or skuId) would change for the selection: explicit object `ids`, or
    `users` already read (an "all matching" selection, with `PREVIEW_SELECT` fields). Reads only.

    With a `deadline`, Graph's throttling or slowness past it is `DeadlineExceeded`, saying what Graph answered."""
    try:
        return _preview(access, action, target, ids=ids, users=users, deadline=deadline)
    except (Throttled, GraphUnavailable) as exc:
        if deadline is None or isinstance(exc, DeadlineExceeded):
            raise
        what = "429 Too Many Requests: it is throttling this tenant" if isinstance(exc, Throttled) else (
            "no proper answer in time")
        raise DeadlineExceeded(
            f"Microsoft Graph did not answer the preview within {deadline:g} s ({what}). Nothing was changed. "
            "Try again in a minute.", request_id=exc.request_id) from exc


def _preview(access: GraphAccess, action: Action, target: str, *, ids: Sequence[str] | None,
             users: Iterable[dict[str, Any]] | None, deadline: float | None) -> Preview:
    client = access.client
    sent_before = client.requests_sent
    pin_tokens(client)
    budget = Budget(client, deadline)
    target_id = checked_object_id(target, "target")
    unchanged: Counter[str] = Counter()
    candidates: dict[str, dict[str, Any]] = {}
    wanted: list[str] = []
    if ids is not None:
        upns: list[str] = []
        for raw in dict.fromkeys(i.strip() for i in ids if i.strip()):
            if odata.is_guid(raw):
                wanted.append(raw.lower())
            elif _UPN.match(raw):
                upns.append(raw.lower())
            else:
                unchanged["invalid"] += 1
        if upns:  # user principal names: their object ids first (300 per request)
            by_upn = lookup_users(client, upns, budget, "id,userPrincipalName", prop="userPrincipalName")
            unchanged["not_found"] += sum(1 for u in upns if u not in by_upn)
            wanted.extend(str(u["id"]).lower() for u in by_upn.values())
        wanted = list(dict.fromkeys(wanted))
    if action in GROUP_ACTIONS:
        members: set[str] = set()
        if ids is None:
            group = get_group(access, target_id, with_member_count=False)
        else:  # the group and its size, the users, then their membership: each starts as soon as it can
            with ThreadPoolExecutor(max_workers=2) as pool:
                group_future = pool.submit(_group_and_size, access, target_id)
                users_future = pool.submit(lookup_users, client, wanted, budget, "id,displayName,userPrincipalName")
                group, size = group_future.result()
                members_future = pool.submit(_membership(client, target_id, size, wanted, budget))
                candidates = users_future.result()
                members = members_future.result()
        result = Preview(action, group.id, group.display_name or group.id)
        _plan_membership(result, candidates, wanted, members, users, client, target_id, budget)
    else:
        plan = find_plan(access, target_id)
        result = Preview(action, plan.sku_id, plan.friendly_name, seats_left=plan.available_units)
        if ids is not None:
            candidates = lookup_users(client, wanted, budget)
        _plan_licence(result, candidates, wanted, users, budget)
    result.unchanged.update(unchanged)
    result.graph_requests = client.requests_sent - sent_before
    return result


def _selected_users(candidates: dict[str, dict[str, Any]], wanted: list[str],
                    users: Iterable[dict[str, Any]] | None, unchanged: Counter[str]) -> Iterator[dict[str, Any]]:
    if users is not None:
        seen: set[str] = set()
        for user in users:
            uid = str(user.get("id", "")).lower()
            if uid in seen:
                continue
            seen.add(uid)
            if user.get("@odata.type", "#microsoft.graph.user") != "#microsoft.graph.user":
                unchanged["not_a_user"] += 1
                continue
            yield user
        return
    for uid in wanted:
        user = candidates.get(uid)
        if user is None:
            unchanged["not_found"] += 1
        else:
            yield user


def _plan_membership(result: Preview, candidates: dict[str, dict[str, Any]], wanted: list[str], members: set[str],
                     users: Iterable[dict[str, Any]] | None, client: GraphClient, group_id: str,
                     budget: Budget) -> None:
    if users is not None:  # an "all matching" selection: read the target's member ids once
        members = group_member_ids(client, group_id, budget)
    for user in _selected_users(candidates, wanted, users, result.unchanged):
        budget.check()
        uid = str(user["id"]).lower()
        is_member = uid in members
        if result.action == "add" and is_member:
            result.unchanged["already_member"] += 1
        elif result.action == "remove" and not is_member:
            result.unchanged["not_member"] += 1
        else:
            result.changes.append(Planned(uid, label_of(user)))


def _plan_licence(result: Preview, candidates: dict[str, dict[str, Any]], wanted: list[str],
                  users: Iterable[dict[str, Any]] | None, budget: Budget) -> None:
    sku = result.target_id.lower()
    seats = result.seats_left if result.seats_left is not None else 0
    for user in _selected_users(candidates, wanted, users, result.unchanged):
        budget.check()
        holds = any(str(a.get("skuId", "")).lower() == sku for a in user.get("assignedLicenses") or [])
        if result.action == "remove-licence":
            if holds:
                result.changes.append(Planned(str(user["id"]).lower(), label_of(user)))
            else:
                result.unchanged["not_assigned"] += 1
        elif holds:
            result.unchanged["already_assigned"] += 1
        elif not user.get("usageLocation"):
            result.unchanged["usage_location_required"] += 1
        elif seats <= 0:
            result.unchanged["no_seats_left"] += 1
        else:
            seats -= 1
            result.changes.append(Planned(str(user["id"]).lower(), label_of(user)))
