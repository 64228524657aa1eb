"""The ten operations and the bulk ones against the real emulator over HTTPS, state checked through Graph."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from office365 import bulk
from office365 import operations as ops
from office365.errors import (
    FieldError,
    InvalidRequest,
    MailNicknameTaken,
    NoSeatsLeft,
    NotAMember,
    NotFound,
    PermissionDenied,
    UsageLocationRequired,
    WriteNotAllowed,
)
from office365.operations import GraphAccess, GroupType, NewGroup
from tests.office365.emulator_support import ADMIN_SCOPES, Control, EmulatorTokens, graph_client

E3, E5, PBI = "ENTERPRISEPACK", "SPE_E5", "POWER_BI_PRO"


def tenant_id(db: Any, domain: str) -> str:
    return db.execute("SELECT id FROM tenants WHERE domain = ?", (domain,)).fetchone()[0]


def member_ids(admin: GraphAccess, group_id: str) -> set[str]:
    return {m["id"] for m in admin.client.iter_items(f"/groups/{group_id}/members", params={"$select": "id"})}


def sku_id(db: Any, part: str) -> str:
    return db.execute("SELECT sku_id FROM skus WHERE sku_part_number = ?", (part,)).fetchone()[0]


def licences_of(admin: GraphAccess, user_id: str) -> dict[str, list[str]]:
    body = admin.client.get(f"/users/{user_id}", params={"$select": "assignedLicenses"}).body
    return {a["skuId"]: a.get("disabledPlans", []) for a in body["assignedLicenses"]}


def users_where(db: Any, where: str, *args: Any) -> list[Any]:
    return db.execute(f"SELECT * FROM users WHERE account_enabled = 1 AND {where} ORDER BY seq", args).fetchall()


def new_group(admin: GraphAccess, members: tuple[str, ...] = ()) -> str:
    name = f"Test {uuid.uuid4().hex[:10]}"
    return ops.create_group(admin, NewGroup(name, members=members)).group.id


# -- reads ---------------------------------------------------------------------------------------------------


def test_user_list_pages_through_the_whole_directory(admin: GraphAccess, db: Any, domain: str) -> None:
    expected = [r["id"] for r in db.execute("SELECT id FROM users WHERE tenant_id = ? ORDER BY seq",
                                            (tenant_id(db, domain),))]
    seen: list[str] = []
    cursor, pages = None, 0
    while True:
        page = ops.list_users(admin, page_size=7, cursor=cursor)
        assert len(page.users) <= 7 and page.request_id
        seen += [u.id for u in page.users]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected and pages == -(-len(expected) // 7)
    assert [u.id for u in ops.iter_users(admin, page_size=11)] == expected
    row = db.execute("SELECT * FROM users WHERE id = ?", (expected[3],)).fetchone()
    user = next(u for u in ops.iter_users(admin) if u.id == expected[3])
    assert (user.display_name, user.user_principal_name, user.usage_location, user.account_enabled) == (
        row["display_name"], row["user_principal_name"], row["usage_location"], bool(row["account_enabled"]))
    held = {r[0] for r in db.execute("SELECT sku_id FROM user_licenses WHERE user_id = ?", (row["id"],))}
    assert set(user.licence_sku_ids) == held


def test_group_list_types_and_member_counts(admin: GraphAccess, db: Any) -> None:
    groups, cursor = [], None
    while True:
        page = ops.list_groups(admin, page_size=15, cursor=cursor)
        groups += page.groups
        if not (cursor := page.next_cursor):
            break
    rows = {r["id"]: r for r in db.execute("SELECT * FROM groups")}
    assert {g.id for g in groups} == set(rows)
    kinds = set()
    for group in groups:
        row = rows[group.id]
        unified = "Unified" in row["group_types"]
        expected = (GroupType.MICROSOFT_365 if unified else GroupType.MAIL_ENABLED_SECURITY if row["mail_enabled"]
                    else GroupType.SECURITY)
        assert group.type is expected
        kinds.add(group.type)
        count = db.execute("SELECT count(*) FROM memberships WHERE group_id = ? AND relation = 'member'",
                           (group.id,)).fetchone()[0]
        assert group.member_count == count
    assert {GroupType.SECURITY, GroupType.MICROSOFT_365, GroupType.MAIL_ENABLED_SECURITY} <= kinds


def test_find_users_prefix_matches_name_mail_and_upn(admin: GraphAccess, db: Any) -> None:
    for text in ("ann", "Ann O'", "adele.v"):
        found = {u.id for u in ops.find_users(admin, text, page_size=50).users}
        like = text.lower()
        expected = {r["id"] for r in db.execute("SELECT * FROM users") if any(
            (r[c] or "").lower().startswith(like) for c in ("display_name", "mail", "user_principal_name"))}
        assert found == expected and found, text


def test_find_users_search_mode_matches_tokens(admin: GraphAccess, db: Any) -> None:
    page = ops.find_users(admin, "ann", mode="search", page_size=50)
    names = {u.display_name for u in page.users}
    with_token = {r["display_name"] for r in db.execute("SELECT display_name FROM users")
                  if any(w.lower().startswith("ann") for w in (r[0] or "").split())}
    assert with_token and with_token <= names


def test_find_groups(admin: GraphAccess, db: Any) -> None:
    found = ops.find_groups(admin, "sal", page_size=50)
    expected = {r["id"] for r in db.execute("SELECT * FROM groups") if any(
        (r[c] or "").lower().startswith("sal") for c in ("display_name", "mail", "mail_nickname"))}
    assert {g.id for g in found.groups} == expected and expected
    assert all(g.member_count is not None for g in found.groups)


def test_licence_plan_list_matches_subscriptions(admin: GraphAccess, db: Any, domain: str) -> None:
    plans = ops.list_licence_plans(admin)
    assert plans.request_id
    rows = db.execute("SELECT * FROM skus WHERE tenant_id = ?", (tenant_id(db, domain),)).fetchall()
    assert {p.sku_id for p in plans.plans} == {r["sku_id"] for r in rows}
    for plan in plans.plans:
        row = next(r for r in rows if r["sku_id"] == plan.sku_id)
        consumed = db.execute("SELECT count(*) FROM user_licenses WHERE sku_id = ?", (plan.sku_id,)).fetchone()[0]
        assert (plan.consumed_units, plan.purchased_units) == (consumed, row["prepaid_enabled"])
        assert plan.sku_part_number == row["sku_part_number"] and plan.friendly_name != plan.sku_part_number
        assert len(plan.service_plans) == len(__import__("json").loads(row["service_plans"]))


# -- groups and membership ------------------------------------------------------------------------------------


def test_create_security_group_with_owner_and_members(admin: GraphAccess, db: Any) -> None:
    people = [r["id"] for r in users_where(db, "usage_location IS NOT NULL")][:4]
    ghost = str(uuid.uuid4())
    created = ops.create_group(admin, NewGroup(
        "Équipe R&D (Paris)", description="Created by the tests", owners=(people[0],),
        members=(people[1], people[2], ghost)))
    assert created.group.mail_nickname == "equipe-r-d-paris" and created.group.type is GroupType.SECURITY
    outcomes = {r.id: r.outcome for r in created.member_results}
    assert outcomes == {people[1]: "added", people[2]: "added", ghost: "not_found"}
    body = admin.client.get(f"/groups/{created.group.id}").body
    assert (body["displayName"], body["securityEnabled"], body["mailEnabled"], body["groupTypes"]) == (
        "Équipe R&D (Paris)", True, False, [])
    owners = {o["id"] for o in admin.client.iter_items(f"/groups/{created.group.id}/owners")}
    assert owners == {people[0]}
    assert member_ids(admin, created.group.id) == {people[1], people[2]}


def test_create_microsoft_365_group(admin: GraphAccess) -> None:
    nick = f"m365-{uuid.uuid4().hex[:8]}"
    created = ops.create_group(admin, NewGroup("Launch team", group_type=GroupType.MICROSOFT_365, mail_nickname=nick))
    body = admin.client.get(f"/groups/{created.group.id}").body
    assert body["groupTypes"] == ["Unified"] and body["mailEnabled"] is True and body["mailNickname"] == nick
    assert created.group.type is GroupType.MICROSOFT_365


def test_taken_mail_nickname_is_a_field_error_with_a_free_suggestion(admin: GraphAccess, db: Any,
                                                                       control: Control) -> None:
    taken = db.execute("SELECT mail_nickname FROM groups WHERE group_types LIKE '%Unified%'").fetchone()[0]
    before = control.counters()["counters"].get("POST /v1.0/groups", 0)
    with pytest.raises(MailNicknameTaken) as info:
        ops.create_group(admin, NewGroup("Another", group_type=GroupType.MICROSOFT_365, mail_nickname=taken))
    assert info.value.field == "mail_nickname" and taken in str(info.value)
    suggestion = info.value.suggestion
    assert suggestion and suggestion.lower() != taken.lower()
    assert db.execute("SELECT count(*) FROM groups WHERE lower(mail_nickname) = ?",
                      (suggestion.lower(),)).fetchone()[0] == 0
    assert control.counters()["counters"].get("POST /v1.0/groups", 0) == before  # nothing created


def test_invalid_mail_nickname_is_refused_before_sending(admin: GraphAccess, control: Control) -> None:
    control.reset_counters()
    with pytest.raises(FieldError) as info:
        ops.create_group(admin, NewGroup("Sales: EMEA", mail_nickname="sales: emea"))
    assert info.value.suggestion == "sales-emea"
    assert control.graph_requests() == 0


def test_add_user_to_group_then_already_a_member(admin: GraphAccess, db: Any) -> None:
    group = new_group(admin)
    user = users_where(db, "1")[5]["id"]
    assert ops.add_user_to_group(admin, group, user).outcome == "added"
    assert member_ids(admin, group) == {user}
    again = ops.add_user_to_group(admin, group, user)
    assert again.outcome == "already_member" and "already a member" in again.message and again.request_id
    assert member_ids(admin, group) == {user}


def test_add_with_unknown_ids_says_which_is_missing(admin: GraphAccess, db: Any) -> None:
    group, user, ghost = new_group(admin), users_where(db, "1")[6]["id"], str(uuid.uuid4())
    with pytest.raises(NotFound, match=f"user {ghost} does not exist"):
        ops.add_user_to_group(admin, group, ghost)
    with pytest.raises(NotFound, match=f"group {ghost} does not exist"):
        ops.add_user_to_group(admin, ghost, user)
    assert member_ids(admin, group) == set()


def test_remove_user_from_group_keeps_the_user(admin: GraphAccess, db: Any) -> None:
    users = [r["id"] for r in users_where(db, "1")[7:9]]
    group = new_group(admin, members=tuple(users))
    result = ops.remove_user_from_group(admin, group, users[0])
    assert result.outcome == "removed"
    assert member_ids(admin, group) == {users[1]}
    assert admin.client.get(f"/users/{users[0]}").body["id"] == users[0]  # the user itself is untouched
    with pytest.raises(NotAMember, match="not a member"):
        ops.remove_user_from_group(admin, group, users[0])


# -- licences ----------------------------------------------------------------------------------------------


def test_assign_licence_needs_a_usage_location_then_sets_it(emu: Any, domain: str, admin: GraphAccess, db: Any,
                                                             control: Control) -> None:
    user = users_where(db, "usage_location IS NULL")[0]["id"]
    sku = sku_id(db, PBI)
    control.reset_counters()
    with pytest.raises(UsageLocationRequired, match="usage location"):
        ops.assign_licence(admin, user, sku)
    counters = control.counters()["counters"]
    assert not any(k.startswith(("PATCH", "POST")) for k in counters)  # checked, nothing written
    with pytest.raises(WriteNotAllowed, match="User.ReadWrite.All"):  # setting it needs more than the usual grant
        ops.assign_licence(admin, user, sku, set_usage_location="FR")
    assert sku not in licences_of(admin, user)
    tokens = EmulatorTokens(emu, f"admin@{domain}", scopes=(*ADMIN_SCOPES, "User.ReadWrite.All"))
    writer = GraphAccess(graph_client(emu, tokens), can_write=True)
    change = ops.assign_licence(writer, user, sku, set_usage_location="fr")
    assert (change.outcome, change.usage_location_set) == ("assigned", "FR") and change.request_id
    assert admin.client.get(f"/users/{user}", params={"$select": "usageLocation"}).body["usageLocation"] == "FR"
    assert licences_of(admin, user)[sku] == []


def test_assign_licence_with_disabled_plans_then_remove(admin: GraphAccess, db: Any) -> None:
    sku = sku_id(db, E3)
    user = next(r["id"] for r in users_where(db, "usage_location IS NOT NULL")
                if not db.execute("SELECT 1 FROM user_licenses WHERE user_id = ? AND sku_id = ?",
                                  (r["id"], sku)).fetchone())
    plans = [p.id for p in next(p for p in ops.list_licence_plans(admin).plans if p.sku_id == sku).service_plans]
    assert ops.assign_licence(admin, user, sku, disabled_plans=plans[:2]).outcome == "assigned"
    assert sorted(licences_of(admin, user)[sku]) == sorted(plans[:2])
    assert ops.assign_licence(admin, user, sku, disabled_plans=plans[:1]).outcome == "updated"
    assert licences_of(admin, user)[sku] == plans[:1]
    with pytest.raises(FieldError, match="not service plans"):
        ops.assign_licence(admin, user, sku, disabled_plans=[str(uuid.uuid4())])
    assert ops.remove_licence(admin, user, sku).outcome == "removed"
    assert sku not in licences_of(admin, user)
    with pytest.raises(InvalidRequest, match="does not hold"):
        ops.remove_licence(admin, user, sku)


def test_unknown_user_for_a_licence(admin: GraphAccess, db: Any) -> None:
    ghost = str(uuid.uuid4())
    with pytest.raises(NotFound, match=f"user {ghost} does not exist"):
        ops.assign_licence(admin, ghost, sku_id(db, PBI))


def test_bulk_licence_stops_at_the_seats_left_then_single_assign_is_refused(admin: GraphAccess, db: Any) -> None:
    sku = sku_id(db, E5)
    plan = next(p for p in ops.list_licence_plans(admin).plans if p.sku_id == sku)
    free = plan.available_units
    holders = {r[0] for r in db.execute("SELECT user_id FROM user_licenses WHERE sku_id = ?", (sku,))}
    located = [r["id"] for r in users_where(db, "usage_location IS NOT NULL") if r["id"] not in holders]
    unlocated = users_where(db, "usage_location IS NULL")[-1]["id"]
    candidates = located[: free + 2]
    group = new_group(admin, members=(*candidates, unlocated, next(iter(holders))))
    preview = bulk.assign_licence_to_group_members(admin, group, sku, dry_run=True)
    assert preview.count("planned") == free and licences_of(admin, candidates[0]).get(sku) is None
    result = bulk.assign_licence_to_group_members(admin, group, sku)
    assert result.count("assigned") == free
    assert result.count("no_seats_left") == 2
    assert result.count("usage_location_required") == 1 and result.count("already_assigned") == 1
    assigned = [i.id for i in result.items if i.outcome == "assigned"]
    assert all(sku in licences_of(admin, u) for u in assigned)
    after = next(p for p in ops.list_licence_plans(admin).plans if p.sku_id == sku)
    assert after.consumed_units == after.purchased_units
    with pytest.raises(NoSeatsLeft, match="No seats are left"):
        ops.assign_licence(admin, candidates[-1], sku)


# -- bulk add ---------------------------------------------------------------------------------------------------


def test_bulk_add_uses_one_request_per_twenty_users(admin: GraphAccess, db: Any, control: Control) -> None:
    users = [r["id"] for r in users_where(db, "1")][:40]
    group = new_group(admin)
    control.reset_counters()
    result = bulk.add_users_to_group(admin, group, users)
    assert result.count("added") == 40
    counters = control.counters()["counters"]
    assert counters == {"PATCH /v1.0/groups/<group_id>": 2} and result.graph_requests == 2
    assert member_ids(admin, group) == set(users)


def test_bulk_add_with_existing_members_and_bad_ids(admin: GraphAccess, db: Any, control: Control) -> None:
    users = [r["id"] for r in users_where(db, "1")][:30]
    group = new_group(admin, members=(users[3], users[25]))
    ghost = str(uuid.uuid4())
    control.reset_counters()
    result = bulk.add_users_to_group(admin, group, [*users, ghost, "not-an-id"])
    outcomes = {i.id: i.outcome for i in result.items}
    assert outcomes[users[3]] == outcomes[users[25]] == "already_member"
    assert outcomes[ghost] == "not_found" and outcomes["not-an-id"] == "invalid"
    assert [i.id for i in result.items if i.outcome == "added"] == [u for u in users if u not in (users[3], users[25])]
    counters = control.counters()["counters"]
    # 2 PATCH refused, then each chunk resolved by one $batch (the emulator also counts the items inside it)
    assert counters["PATCH /v1.0/groups/<group_id>"] == 2 and counters["POST /v1.0/$batch"] == 2
    assert counters["POST /v1.0/groups/<group_id>/members/$ref"] == 31
    assert result.graph_requests == 4
    assert member_ids(admin, group) == set(users)


# -- refusals ---------------------------------------------------------------------------------------------------


def test_read_only_datasource_sends_nothing(emu: Any, admin_tokens: EmulatorTokens, db: Any,
                                            control: Control) -> None:
    reader = GraphAccess(graph_client(emu, admin_tokens), can_write=False)
    user = users_where(db, "1")[0]["id"]
    group = db.execute("SELECT id FROM groups").fetchone()[0]
    control.reset_counters()
    with pytest.raises(WriteNotAllowed, match="Read and write users & groups"):
        ops.add_user_to_group(reader, group, user)
    with pytest.raises(WriteNotAllowed):
        bulk.add_users_to_group(reader, group, [user])
    assert control.graph_requests() == 0
    assert ops.list_users(reader, page_size=1).users  # reads still work


def test_grant_without_write_scope_sends_nothing(emu: Any, domain: str, admin_tokens: EmulatorTokens, db: Any,
                                                 control: Control) -> None:
    tokens = EmulatorTokens(emu, f"admin@{domain}", scopes=("User.Read.All", "Organization.Read.All"))
    limited = GraphAccess(graph_client(emu, tokens), can_write=True)
    control.reset_counters()
    with pytest.raises(WriteNotAllowed, match="LicenseAssignment.ReadWrite.All"):
        ops.remove_licence(limited, users_where(db, "1")[0]["id"], sku_id(db, PBI))
    assert control.graph_requests() == 0


def test_admin_without_directory_role_gets_permission_denied(emu: Any, admin_tokens: EmulatorTokens, db: Any) -> None:
    plain = next(r for r in users_where(db, "directory_roles = '[]' AND password = 'demo'"))
    tokens = EmulatorTokens(emu, plain["user_principal_name"])
    access = GraphAccess(graph_client(emu, tokens), can_write=True)
    group = db.execute("SELECT id FROM groups WHERE group_types = '[]'").fetchone()[0]
    with pytest.raises(PermissionDenied) as info:
        ops.add_user_to_group(access, group, plain["id"])
    assert info.value.status == 403 and info.value.code == "Authorization_RequestDenied"
    assert "Re-Authorize" in str(info.value) and info.value.request_id


# -- pages of the UI: one user with their licences, one group with its members -----------------------------


def test_user_page_and_their_licences(admin: GraphAccess, db: Any) -> None:
    row = next(r for r in users_where(db, "1")
               if db.execute("SELECT count(*) FROM user_licenses WHERE user_id = ?", (r["id"],)).fetchone()[0] >= 2)
    user = ops.get_user(admin, row["user_principal_name"])
    assert (user.id, user.display_name) == (row["id"], row["display_name"])
    held = {r[0] for r in db.execute("SELECT sku_id FROM user_licenses WHERE user_id = ?", (row["id"],))}
    licences = ops.user_licences(admin, row["id"])
    assert {lic.sku_id for lic in licences} == held
    assert all(lic.friendly_name and lic.service_plans for lic in licences)
    ghost = str(uuid.uuid4())
    with pytest.raises(NotFound, match=ghost):
        ops.get_user(admin, ghost)
    with pytest.raises(NotFound, match=ghost):
        ops.user_licences(admin, ghost)


def test_group_page_lists_members_page_by_page(admin: GraphAccess, db: Any) -> None:
    group = db.execute("SELECT group_id FROM memberships WHERE relation = 'member' GROUP BY group_id "
                       "ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    expected = {r[0] for r in db.execute("SELECT member_id FROM memberships WHERE group_id = ? AND relation = "
                                         "'member'", (group,))}
    seen, cursor = [], None
    while True:
        page = ops.list_group_members(admin, group, page_size=9, cursor=cursor)
        seen += page.members
        if not (cursor := page.next_cursor):
            break
    assert {m.id for m in seen} == expected and len(seen) == len(expected) > 9
    assert {m.kind for m in seen} == {"user"} and all(m.user_principal_name for m in seen)
    assert {m.id for m in ops.iter_group_members(admin, group)} == expected
    with pytest.raises(NotFound, match="group"):
        ops.list_group_members(admin, str(uuid.uuid4()))
