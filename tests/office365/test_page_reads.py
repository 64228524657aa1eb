"""Reads behind the operation pages, against the emulator: a group, a user's groups, many users resolved by
id or UPN in `$batch`es (bulk previews)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from office365 import operations as ops
from office365.errors import FieldError, NotFound
from office365.operations import GraphAccess


def test_get_group_with_type_and_member_count(admin: GraphAccess, db: Any) -> None:
    gid = db.execute("SELECT id FROM groups WHERE display_name = 'Finance'").fetchone()[0]
    count = db.execute("SELECT count(*) FROM memberships WHERE group_id = ? AND relation = 'member'",
                       (gid,)).fetchone()[0]
    group = ops.get_group(admin, gid)
    assert (group.display_name, group.type, group.member_count) == ("Finance", ops.GroupType.MAIL_ENABLED_SECURITY,
                                                                    count)
    with pytest.raises(NotFound, match="does not exist"):
        ops.get_group(admin, str(uuid.uuid4()))
    with pytest.raises(FieldError):
        ops.get_group(admin, "not-a-guid")


def test_user_groups_lists_direct_groups(admin: GraphAccess, db: Any) -> None:
    uid = db.execute("SELECT id FROM users WHERE display_name = 'Adele Vance'").fetchone()[0]
    expected = {r[0] for r in db.execute(
        "SELECT group_id FROM memberships WHERE member_id = ? AND relation = 'member'", (uid,))}
    assert {g.id for g in ops.user_groups(admin, uid)} == expected
    with pytest.raises(NotFound):
        ops.user_groups(admin, str(uuid.uuid4()))


def test_resolve_users_by_id_and_upn_in_batches(admin: GraphAccess, db: Any) -> None:
    rows = db.execute("SELECT id, user_principal_name FROM users ORDER BY seq LIMIT 30").fetchall()
    keys = [r[0] for r in rows[:15]] + [r[1] for r in rows[15:]] + [str(uuid.uuid4()), "not a user", rows[0][0]]
    sent = admin.client.requests_sent
    resolved = ops.resolve_users(admin, keys)
    assert admin.client.requests_sent - sent == 2  # 31 valid keys (duplicate dropped) -> two $batch requests
    found = {r.key: r.user.id for r in resolved if r.user}
    assert found == {**{r[0]: r[0] for r in rows[:15]}, **{r[1]: r[0] for r in rows[15:]}}
    missing = {r.key: r.message for r in resolved if r.user is None}
    assert set(missing) == {keys[30], "not a user"} and missing[keys[30]] == "No such user in the tenant."
