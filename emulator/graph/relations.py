"""Directory-object collections: group members/owners, memberOf, transitiveMemberOf (docs/microsoft.md §5.2, §1.7)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from flask import Response, request

from emulator import directory, seed
from emulator.graph import common, listing, odata
from emulator.graph.errors import bad_request

#: Directory role templates the seed assigns (names as Microsoft shows them).
ROLE_NAMES = {
    seed.GLOBAL_ADMIN: "Global Administrator", seed.PRIV_ROLE_ADMIN: "Privileged Role Administrator",
    seed.USER_ADMIN: "User Administrator", seed.GROUPS_ADMIN: "Groups Administrator",
    seed.LICENSE_ADMIN: "License Administrator", seed.GLOBAL_READER: "Global Reader",
    seed.APP_ADMIN: "Application Administrator", seed.CLOUD_APP_ADMIN: "Cloud Application Administrator",
}


def role_object_id(tenant_id: str, template_id: str) -> str:
    """A directory role's object id in a tenant (activated from its template; differs from the template id)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"directoryRole:{tenant_id}:{template_id}"))


def directory_roles(conn: sqlite3.Connection, tenant_id: str, object_id: str) -> dict[str, dict[str, Any]]:
    """The user's directory roles as `#microsoft.graph.directoryRole` objects, by object id."""
    row = conn.execute("SELECT directory_roles FROM users WHERE tenant_id = ? AND id = ?",
                       (tenant_id, object_id)).fetchone()
    roles = {role_object_id(tenant_id, t): t for t in (json.loads(row[0]) if row else [])}
    return {oid: {"@odata.type": "#microsoft.graph.directoryRole", "id": oid, "deletedDateTime": None,
                  "description": None, "displayName": ROLE_NAMES.get(t, t), "roleTemplateId": t}
            for oid, t in roles.items()}

DIRECTORY_OBJECT_SELECT = tuple(dict.fromkeys((*odata.USER_SCHEMA.select_props, *odata.GROUP_SCHEMA.select_props)))
_DIRECTORY_OBJECT = odata.Schema("DirectoryObject", "microsoft.graph.directoryObject", {},
                                 select_props=DIRECTORY_OBJECT_SELECT)
_DIRECTORY_ROLE = odata.Schema("DirectoryRole", "microsoft.graph.directoryRole", {},
                               select_props=("id", "deletedDateTime", "description", "displayName",
                                             "roleTemplateId"))


def parse_select() -> list[str] | None:
    return odata.parse_select(request.args.get("$select"), _DIRECTORY_OBJECT)


def member_of_roles(object_id: str) -> Response:
    """`memberOf/microsoft.graph.directoryRole`: only the directory roles (an OData type cast)."""
    _no_query_filters()
    select = odata.parse_select(request.args.get("$select"), _DIRECTORY_ROLE)
    roles = directory_roles(common.db(), common.tenant(), object_id)
    context = common.context_url("directoryRoles" + common.select_suffix(select))
    items = [_selected(roles[i], select) for i in sorted(roles)]
    return common.collection(context, items, next_token=None,
                             count=len(items) if common.check_count_param() else None)


def objects_by_id(conn: sqlite3.Connection, tenant_id: str, ids: list[str],
                  select: list[str] | None) -> list[dict[str, Any]]:
    """Graph JSON of users and groups in the order of `ids`, each with its `@odata.type`."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        marks = ",".join("?" * len(chunk))
        users = conn.execute(f"SELECT * FROM users WHERE tenant_id = ? AND id IN ({marks})",  # noqa: S608
                             [tenant_id, *chunk]).fetchall()
        for row, obj in zip(users, listing.USERS.projected(conn, users, select), strict=True):
            found[row["id"]] = {"@odata.type": "#microsoft.graph.user", **obj}
        groups = conn.execute(f"SELECT * FROM groups WHERE tenant_id = ? AND id IN ({marks})",  # noqa: S608
                              [tenant_id, *chunk]).fetchall()
        for row, obj in zip(groups, listing.GROUPS.projected(conn, groups, select), strict=True):
            found[row["id"]] = {"@odata.type": "#microsoft.graph.group", **obj}
    return [found[i] for i in ids if i in found]


def _no_query_filters() -> None:
    if "$filter" in request.args or "$search" in request.args:
        if not common.eventual():
            raise bad_request("Request with $filter or $search on this relationship only works with the special "
                              "request header: 'ConsistencyLevel: eventual'", code="Request_UnsupportedQuery")
        raise bad_request("$filter and $search on directory-object relationships are not supported by the "
                          "emulator.", code="Request_UnsupportedQuery")


def page_of_ids(ids: list[str], context: str, select: list[str] | None, count: int | None = None,
                extra: dict[str, dict[str, Any]] | None = None) -> Response:
    """Page through a sorted id list (keyset on the id) and answer a directoryObjects collection (`extra`:
    objects that are neither users nor groups, by id)."""
    top = odata.parse_top(request.args.get("$top"))
    after = listing.skip_after("i")
    if after is not None:
        ids = [i for i in ids if i > after]
    page = ids[:top]
    token = odata.encode_token({"i": page[-1]}) if len(ids) > top else None
    items = objects_by_id(common.db(), common.tenant(), page, select)
    if extra:
        found = {item["id"]: item for item in items if "id" in item}
        found.update({i: _selected(extra[i], select) for i in page if i in extra})
        items = [found[i] for i in page if i in found]
    return common.collection(context, items, next_token=token, count=count)


def _selected(obj: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    if not select:
        return obj
    return {k: v for k, v in obj.items() if k == "@odata.type" or k == "id" or k in select}


def group_relation(group_id: str, relation: str) -> Response:
    """GET /groups/{id}/members or /owners."""
    conn = common.db()
    if directory.get_group_row(conn, common.tenant(), group_id) is None:
        raise directory.not_found(group_id)
    _no_query_filters()
    select = parse_select()
    want_count = common.check_count_param()
    top = odata.parse_top(request.args.get("$top"))
    after = listing.skip_after("i")
    ids = [r[0] for r in conn.execute(
        "SELECT member_id FROM memberships WHERE group_id = ? AND relation = ? AND member_id > ? "
        "ORDER BY member_id LIMIT ?", (group_id, relation, after or "", top + 1))]
    count = None
    if want_count and after is None:
        count = conn.execute("SELECT count(*) FROM memberships WHERE group_id = ? AND relation = ?",
                             (group_id, relation)).fetchone()[0]
    page = ids[:top]
    token = odata.encode_token({"i": page[-1]}) if len(ids) > top else None
    items = objects_by_id(conn, common.tenant(), page, select)
    context = common.context_url("directoryObjects" + common.select_suffix(select))
    return common.collection(context, items, next_token=token, count=count)


def group_relation_count(group_id: str, relation: str) -> Response:
    conn = common.db()
    if directory.get_group_row(conn, common.tenant(), group_id) is None:
        raise directory.not_found(group_id)
    if not common.eventual():
        raise bad_request("$count is not currently supported.")
    n = conn.execute("SELECT count(*) FROM memberships WHERE group_id = ? AND relation = ?",
                     (group_id, relation)).fetchone()[0]
    return common.text_plain(str(n))


def direct_groups(conn: sqlite3.Connection, object_id: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT group_id FROM memberships WHERE member_id = ? AND relation = 'member'", (object_id,))]


def transitive_groups(conn: sqlite3.Connection, object_id: str) -> set[str]:
    """Every group the object belongs to directly or through nested groups."""
    seen: set[str] = set()
    frontier = [object_id]
    while frontier:
        nxt: list[str] = []
        for oid in frontier:
            for gid in direct_groups(conn, oid):
                if gid not in seen:
                    seen.add(gid)
                    nxt.append(gid)
        frontier = nxt
    return seen


def member_of(object_id: str, transitive: bool) -> Response:
    conn = common.db()
    _no_query_filters()
    select = parse_select()
    want_count = common.check_count_param()
    roles = directory_roles(conn, common.tenant(), object_id)  # memberOf lists directory roles too
    ids = sorted((transitive_groups(conn, object_id) if transitive else set(direct_groups(conn, object_id)))
                 | set(roles))
    count = len(ids) if want_count and "$skiptoken" not in request.args else None
    context = common.context_url("directoryObjects" + common.select_suffix(select))
    return page_of_ids(ids, context, select, count, roles)


def member_of_groups(object_id: str) -> Response:
    """`memberOf/microsoft.graph.group`: only the groups (an OData cast), counted with `$count=true` (§5.11)."""
    conn = common.db()
    _no_query_filters()
    select = odata.parse_select(request.args.get("$select"), odata.GROUP_SCHEMA)
    want_count = common.check_count_param()
    ids = sorted(set(direct_groups(conn, object_id)))
    count = len(ids) if want_count and "$skiptoken" not in request.args else None
    context = common.context_url("groups" + common.select_suffix(select))
    return page_of_ids(ids, context, select, count)


def member_objects(object_id: str, security_only: bool) -> list[str]:
    conn = common.db()
    ids = sorted(transitive_groups(conn, object_id))
    if security_only and ids:
        marks = ",".join("?" * len(ids))
        secure = {r[0] for r in conn.execute(
            f"SELECT id FROM groups WHERE security_enabled = 1 AND id IN ({marks})", ids)}  # noqa: S608
        ids = [i for i in ids if i in secure]
    return ids
