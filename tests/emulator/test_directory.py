"""Directory writes (emulator.directory): Graph-shaped results, errors, and the `changes` journal."""

from __future__ import annotations

import json
import sqlite3

import pytest

from emulator import directory
from emulator.directory import DirectoryError
from emulator.store import SCHEMA

T = "11111111-1111-4111-8111-111111111111"
SKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"
PLAN = "efb87545-963c-4e0d-99df-69c6916d9eb0"


@pytest.fixture()
def conn() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.row_factory = sqlite3.Row
    db.executescript(SCHEMA)
    db.execute("INSERT INTO tenants (id, display_name, domain, created) VALUES (?, 'Contoso', 'contoso.example', "
               "'2024-01-15T09:00:00Z')", (T,))
    db.execute("INSERT INTO skus (tenant_id, sku_id, sku_part_number, prepaid_enabled, service_plans) "
               "VALUES (?, ?, 'ENTERPRISEPACK', 1, ?)",
               (T, SKU, json.dumps([{"servicePlanId": PLAN, "servicePlanName": "EXCHANGE_S_ENTERPRISE",
                                     "provisioningStatus": "Success", "appliesTo": "User"}])))
    return db


def changes(conn: sqlite3.Connection) -> list[tuple]:
    return [tuple(r) for r in conn.execute(
        "SELECT kind, object_id, removed, member_id, member_removed FROM changes ORDER BY seq")]


def new_user(conn: sqlite3.Connection, nick: str, **props) -> dict:
    return directory.create_user(conn, T, {"displayName": nick.title(), "userPrincipalName": f"{nick}@contoso.example",
                                           **props})


def err(fn, *args, **kw) -> DirectoryError:
    with pytest.raises(DirectoryError) as info:
        fn(*args, **kw)
    return info.value


def test_create_update_delete_user_journal(conn):
    user = new_user(conn, "ann", usageLocation="US", mobilePhone="+1 555", accountEnabled=True)
    assert user["userPrincipalName"] == "ann@contoso.example"
    assert (user["usageLocation"], user["mobilePhone"], user["accountEnabled"]) == ("US", "+1 555", True)
    assert user["assignedLicenses"] == [] and user["createdDateTime"].endswith("Z")
    updated = directory.update_user(conn, T, "ANN@contoso.example", {"jobTitle": "Boss", "officeLocation": "B1"})
    assert (updated["jobTitle"], updated["officeLocation"]) == ("Boss", "B1")
    directory.delete_user(conn, T, user["id"])
    assert changes(conn) == [("user", user["id"], None, None, None), ("user", user["id"], None, None, None),
                             ("user", user["id"], "changed", None, None)]
    assert directory.get_user_row(conn, T, user["id"]) is None


def test_user_errors(conn):
    new_user(conn, "ann")
    e = err(new_user, conn, "ann")
    assert (e.status, e.code, e.message) == (
        400, "Request_BadRequest", "Another object with the same value for property userPrincipalName already exists.")
    e = err(directory.update_user, conn, T, "ann@contoso.example", {"usageLocation": "usa"})
    assert e.message == "Invalid value specified for property 'usageLocation' of resource 'User'."
    e = err(directory.update_user, conn, T, "ann@contoso.example", {"nope": 1})
    assert e.status == 400
    e = err(directory.update_user, conn, T, "missing@contoso.example", {"jobTitle": "x"})
    assert (e.status, e.code) == (404, "Request_ResourceNotFound")
    assert e.message.startswith("Resource 'missing@contoso.example' does not exist")
    assert err(directory.create_user, conn, T, {"displayName": "No UPN"}).status == 400


def test_groups_members_and_journal(conn):
    a = new_user(conn, "ann")["id"]
    b = new_user(conn, "bob")["id"]
    group = directory.create_group(conn, T, {"displayName": "Team", "mailEnabled": True, "mailNickname": "team",
                                             "securityEnabled": False, "groupTypes": ["Unified"],
                                             "members@odata.bind": [f"https://graph.microsoft.com/v1.0/users/{a}"]},
                                   creator_id=b)
    gid = group["id"]
    assert group["mail"] == "team@contoso.example" and group["groupTypes"] == ["Unified"]
    owners = [r[0] for r in conn.execute("SELECT member_id FROM memberships WHERE relation = 'owner'")]
    assert owners == [b]
    directory.add_member(conn, T, gid, b)
    e = err(directory.add_member, conn, T, gid, b)
    assert e.message == "One or more added object references already exist for the following modified properties: " \
                        "'members'."
    directory.remove_member(conn, T, gid, b)
    e = err(directory.remove_member, conn, T, gid, b)
    assert (e.status, e.code) == (404, "Request_ResourceNotFound")
    directory.delete_user(conn, T, a)
    directory.delete_group(conn, T, gid, permanent=True)
    group_changes = [c for c in changes(conn) if c[0] == "group"]
    assert group_changes == [("group", gid, None, None, None), ("group", gid, None, a, 0),
                             ("group", gid, None, b, 0), ("group", gid, None, b, 1), ("group", gid, None, a, 1),
                             ("group", gid, "deleted", None, None)]


def test_nickname_rules(conn):
    base = {"displayName": "G", "mailEnabled": False, "securityEnabled": True}
    assert directory.valid_mail_nickname("a" * 64) and not directory.valid_mail_nickname("a" * 65)
    for bad in ("a b", "a@b", "a(b", "a)b", "a\\b", "a[b", "a]b", 'a"b', "a;b", "a:b", "a.b", "a<b", "a>b", "a,b",
                "é", ""):
        assert not directory.valid_mail_nickname(bad), bad
        e = err(directory.create_group, conn, T, {**base, "mailNickname": bad})
        assert e.message == "Invalid value specified for property 'mailNickname' of resource 'Group'."
    assert directory.valid_mail_nickname("ok-name_1!#$%&'*+/=?^`{|}~")
    directory.create_group(conn, T, {**base, "mailNickname": "dup"})
    directory.create_group(conn, T, {**base, "mailNickname": "dup"})  # security groups may share nicknames
    unified = {"displayName": "U", "mailEnabled": True, "securityEnabled": False, "groupTypes": ["Unified"]}
    directory.create_group(conn, T, {**unified, "mailNickname": "m365"})
    e = err(directory.create_group, conn, T, {**unified, "mailNickname": "M365"})
    assert e.message == "Another object with the same value for property mailNickname already exists."
    e = err(directory.create_group, conn, T, {**base, "mailEnabled": True, "mailNickname": "dl"})
    assert e.status == 400


def test_update_group_binds_all_or_nothing(conn):
    users = [new_user(conn, f"u{n}")["id"] for n in range(3)]
    gid = directory.create_group(conn, T, {"displayName": "G", "mailEnabled": False, "mailNickname": "g",
                                           "securityEnabled": True})["id"]
    bind = [f"https://graph.microsoft.com/v1.0/directoryObjects/{u}" for u in users]
    directory.update_group(conn, T, gid, {"members@odata.bind": bind[:1]})
    e = err(directory.update_group, conn, T, gid, {"members@odata.bind": bind[1:] + bind[:1]})
    assert e.status == 400
    assert conn.execute("SELECT count(*) FROM memberships WHERE group_id = ?", (gid,)).fetchone()[0] == 1
    e = err(directory.update_group, conn, T, gid, {"members@odata.bind": bind * 7})
    assert e.status == 400
    directory.update_group(conn, T, gid, {"members@odata.bind": bind[1:], "displayName": "G2"})
    assert conn.execute("SELECT count(*) FROM memberships WHERE group_id = ?", (gid,)).fetchone()[0] == 3
    assert directory.get_group_row(conn, T, gid)["display_name"] == "G2"


def test_assign_licenses(conn):
    ann = new_user(conn, "ann", usageLocation="US")["id"]
    bob = new_user(conn, "bob", usageLocation="GB")["id"]
    nowhere = new_user(conn, "cy")["id"]
    add = [{"skuId": SKU, "disabledPlans": [PLAN]}]
    e = err(directory.assign_licenses, conn, T, nowhere, add, [])
    assert e.message == "License assignment cannot be done for user with invalid usage location."
    result = directory.assign_licenses(conn, T, ann, add, [])
    assert result["assignedLicenses"] == [{"disabledPlans": [PLAN], "skuId": SKU}]
    # Re-sending the same SKU with other disabled plans updates it without needing a seat.
    result = directory.assign_licenses(conn, T, ann, [{"skuId": SKU, "disabledPlans": []}], [])
    assert result["assignedLicenses"] == [{"disabledPlans": [], "skuId": SKU}]
    e = err(directory.assign_licenses, conn, T, bob, add, [])
    assert e.message == f"Subscription with SKU {SKU} does not have any available licenses."
    e = err(directory.assign_licenses, conn, T, bob, [], [SKU])
    assert e.message == "User does not have a corresponding license."
    e = err(directory.assign_licenses, conn, T, bob, None, [])
    assert e.message.endswith("The missing parameters are: addLicenses.")
    directory.assign_licenses(conn, T, ann, [], [SKU])
    assert directory.assign_licenses(conn, T, bob, add, [])["assignedLicenses"][0]["skuId"] == SKU
    assert [c[1] for c in changes(conn) if c[0] == "user"][-3:] == [ann, ann, bob]
