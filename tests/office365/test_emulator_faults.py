"""The client and the operations under the emulator's injected faults: 429 storms, 5xx, slow answers, dropped
connections, expired and revoked tokens. Each test checks the outcome and the directory's state afterwards."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from office365 import bulk
from office365 import operations as ops
from office365.errors import GraphUnavailable, ReauthorizationRequired, Throttled
from office365.graph import RetryPolicy, Timeouts
from office365.operations import GraphAccess, NewGroup
from tests.office365.emulator_support import Control, EmulatorTokens, graph_client

USERS = "GET /v1.0/users"


def members(admin: GraphAccess, group_id: str) -> set[str]:
    return {m["id"] for m in admin.client.iter_items(f"/groups/{group_id}/members", params={"$select": "id"})}


def some_users(db: Any, n: int, where: str = "1") -> list[str]:
    return [r[0] for r in db.execute(f"SELECT id FROM users WHERE account_enabled = 1 AND {where} ORDER BY seq")][:n]


def fresh_group(admin: GraphAccess) -> str:
    return ops.create_group(admin, NewGroup(f"Faults {uuid.uuid4().hex[:8]}")).group.id


def test_429_storm_is_ridden_out_honouring_retry_after(admin: GraphAccess, control: Control) -> None:
    control.fault(kind="throttle", path="/v1.0/users", method="GET", retry_after=1, count=2)
    control.reset_counters()
    started = time.monotonic()
    page = ops.list_users(admin, page_size=5)
    elapsed = time.monotonic() - started
    assert len(page.users) == 5
    assert control.counters()["counters"][USERS] == 3
    assert elapsed >= 2.0  # waited the two Retry-After seconds


def test_429_storm_longer_than_the_deadline_is_throttled(emu: Any, admin_tokens: EmulatorTokens,
                                                         control: Control) -> None:
    control.fault(kind="throttle", path="/v1.0/users", retry_after=1, seconds=30)
    client = graph_client(emu, admin_tokens, retry=RetryPolicy(max_attempts=10, deadline=2.5))
    control.reset_counters()
    started = time.monotonic()
    with pytest.raises(Throttled) as info:
        ops.list_users(GraphAccess(client), page_size=5)
    assert time.monotonic() - started < 4.0
    err = info.value
    assert err.status == 429 and err.code == "TooManyRequests" and err.request_id
    assert "throttling" in str(err) and "try again" in str(err)
    assert control.counters()["counters"][USERS] == 3  # t=0, 1, 2; a fourth would pass the deadline


def test_503_is_retried_with_backoff(admin: GraphAccess, control: Control) -> None:
    control.fault(kind="error", status=503, path="/subscribedSkus", count=2)
    control.reset_counters()
    plans = ops.list_licence_plans(admin)
    assert plans.plans and control.counters()["counters"]["GET /v1.0/subscribedSkus"] == 3


@pytest.mark.parametrize("status", [503, 504])
def test_persistent_5xx_is_graph_unavailable(emu: Any, admin_tokens: EmulatorTokens, control: Control,
                                             status: int) -> None:
    control.fault(kind="error", status=status, path="/subscribedSkus", seconds=30)
    client = graph_client(emu, admin_tokens, retry=RetryPolicy(max_attempts=4, backoff_base=0.05, deadline=5))
    control.reset_counters()
    with pytest.raises(GraphUnavailable) as info:
        ops.list_licence_plans(GraphAccess(client))
    assert info.value.status == status and "Try again in a few minutes" in str(info.value)
    assert control.counters()["counters"]["GET /v1.0/subscribedSkus"] == 4


def test_500_on_create_group_is_reported_and_nothing_is_created(admin: GraphAccess, control: Control) -> None:
    name = f"Never {uuid.uuid4().hex[:8]}"
    control.fault(kind="error", status=500, path="/v1.0/groups", method="POST", count=1)
    with pytest.raises(GraphUnavailable, match="generalException"):
        ops.create_group(admin, NewGroup(name))
    assert ops.find_groups(admin, name, with_member_count=False).groups == []


def test_slow_read_times_out_and_is_retried(emu: Any, admin_tokens: EmulatorTokens, control: Control) -> None:
    control.fault(kind="delay", delay_ms=1500, path="/v1.0/users", method="GET", count=1)
    client = graph_client(emu, admin_tokens, timeouts=Timeouts(connect=2, read=0.5))
    control.reset_counters()
    page = ops.list_users(GraphAccess(client), page_size=3)
    assert len(page.users) == 3
    assert control.counters()["counters"][USERS] == 2


def test_slow_write_is_not_resent_blindly(emu: Any, admin: GraphAccess, admin_tokens: EmulatorTokens, db: Any,
                                          control: Control) -> None:
    group, user = fresh_group(admin), some_users(db, 1)[0]
    control.fault(kind="delay", delay_ms=1200, path="/members/$ref", method="POST", count=1)
    client = graph_client(emu, admin_tokens, timeouts=Timeouts(connect=2, read=0.4))
    slow = GraphAccess(client, can_write=True)
    with pytest.raises(GraphUnavailable, match="may or may not have been applied"):
        ops.add_user_to_group(slow, group, user)
    time.sleep(1.2)  # the emulator finishes the slow request
    assert members(admin, group) == {user}  # it was applied: hence "check before trying again"
    assert ops.add_user_to_group(admin, group, user).outcome == "already_member"


def test_dropped_connection_on_a_read_is_retried(admin: GraphAccess, control: Control) -> None:
    control.fault(kind="drop", path="/v1.0/users", method="GET", count=1)
    control.reset_counters()
    assert len(ops.list_users(admin, page_size=4).users) == 4
    assert control.counters()["counters"][USERS] == 2


def test_dropped_connection_on_a_write_is_reported(admin: GraphAccess, db: Any, control: Control) -> None:
    group, user = fresh_group(admin), some_users(db, 2)[1]
    control.fault(kind="drop", path="/members/$ref", method="POST", count=1)
    with pytest.raises(GraphUnavailable, match="Check the current state"):
        ops.add_user_to_group(admin, group, user)
    assert members(admin, group) == set()
    assert ops.add_user_to_group(admin, group, user).outcome == "added"


def test_expired_token_is_refreshed_once(emu: Any, domain: str, control: Control) -> None:
    tokens = EmulatorTokens(emu, f"admin@{domain}")
    first = tokens.token
    control.fault(kind="error", status=401, path="/v1.0/users", count=1)
    page = ops.list_users(GraphAccess(graph_client(emu, tokens)), page_size=2)
    assert len(page.users) == 2 and tokens.refreshes == 1 and tokens.token != first


def test_revoked_grant_means_reauthorization(emu: Any, db: Any, control: Control,
                                            admin_tokens: EmulatorTokens) -> None:
    # admin_tokens: the Global Administrator consents for the organisation first, so Megan (not an admin) may
    # sign in with these scopes even when this test is the first of its module on a worker.
    upn = db.execute("SELECT user_principal_name FROM users WHERE display_name = 'Megan Bowen'").fetchone()[0]
    tokens = EmulatorTokens(emu, upn)
    access = GraphAccess(graph_client(emu, tokens), can_write=True)
    group, user = db.execute("SELECT id FROM groups WHERE group_types = '[]'").fetchone()[0], some_users(db, 3)[2]
    control.post("/revoke", {"user": upn})
    control.fault(kind="error", status=401, path="/v1.0/", count=1)  # the access token is rejected...
    with pytest.raises(ReauthorizationRequired, match="Re-Authorize") as info:  # ...and the refresh refused
        ops.remove_user_from_group(access, group, user)
    assert "invalid_grant" in str(info.value)


def test_bulk_add_rides_out_throttled_patches(admin: GraphAccess, db: Any, control: Control) -> None:
    users = some_users(db, 45)
    group = fresh_group(admin)
    control.fault(kind="throttle", path=f"/groups/{group}", method="PATCH", retry_after=0, count=2)
    control.reset_counters()
    result = bulk.add_users_to_group(admin, group, users)
    assert result.count("added") == 45
    assert control.counters()["counters"]["PATCH /v1.0/groups/<group_id>"] == 3 + 2
    assert members(admin, group) == set(users)


def test_batch_items_answering_429_are_retried(admin: GraphAccess, db: Any, control: Control) -> None:
    sku = db.execute("SELECT sku_id FROM skus WHERE sku_part_number = 'ENTERPRISEPACK'").fetchone()[0]
    candidates = [u for u in some_users(db, 100, "usage_location IS NOT NULL")
                  if not db.execute("SELECT 1 FROM user_licenses WHERE user_id = ? AND sku_id = ?", (u, sku))
                  .fetchone()]
    assert len(candidates) >= 5
    group = ops.create_group(admin, NewGroup(f"Licences {uuid.uuid4().hex[:8]}", members=tuple(candidates))).group.id
    control.fault(kind="throttle", path="/assignLicense", retry_after=1, count=3)
    control.reset_counters()
    result = bulk.assign_licence_to_group_members(admin, group, sku)
    assert result.count("assigned") == len(candidates) == len(result.items)
    counters = control.counters()["counters"]
    batches = -(-len(candidates) // 20)
    assert counters["POST /v1.0/$batch"] == batches + 1  # the 3 throttled items sent once more, together
    assert counters["POST /v1.0/users/<ref>/assignLicense"] == len(candidates) + 3
    held = {r[0] for r in db.execute("SELECT user_id FROM user_licenses WHERE sku_id = ?", (sku,))}
    assert set(candidates) <= held
