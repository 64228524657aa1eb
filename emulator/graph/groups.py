"""/groups: list, find, create, read, update, delete; members and owners with `$ref` (docs/microsoft.md §5.2–§5.6)."""

from __future__ import annotations

from flask import Response, g, request

from emulator import directory
from emulator.graph import bp, common, listing, odata, relations
from emulator.graph.errors import bad_request


def _group_row(group_id: str):  # noqa: ANN202 - sqlite3.Row
    row = directory.get_group_row(common.db(), common.tenant(), group_id)
    if row is None:
        raise directory.not_found(group_id)
    return row


@bp.get("/groups")
def list_groups() -> Response:
    common.require(common.GROUP_READ)
    return listing.list_collection(listing.GROUPS)


@bp.get("/groups/$count")
def count_groups() -> Response:
    common.require(common.GROUP_READ)
    return listing.count_collection(listing.GROUPS)


@bp.post("/groups")
def create_group() -> Response:
    common.require(common.GROUP_CREATE, write=True)
    body = common.json_body()
    with common.store().transaction() as conn:
        obj = directory.create_group(conn, common.tenant(), body, creator_id=g.get("caller_oid"))
    payload = {"@odata.context": common.context_url("groups/$entity"),
               **common.project(obj, None, listing.GROUP_DEFAULT)}
    return common.odata_json(payload, status=201,
                             headers={"Location": f"{common.base_url()}/v1.0/groups/{obj['id']}"})


@bp.get("/groups/<group_id>")
def get_group(group_id: str) -> Response:
    common.require(common.GROUP_READ)
    row = _group_row(group_id)
    select = odata.parse_select(request.args.get("$select"), odata.GROUP_SCHEMA)
    obj = common.project(directory.group_to_graph(row), select, listing.GROUP_DEFAULT)
    context = common.context_url("groups" + common.select_suffix(select) + "/$entity")
    return common.odata_json({"@odata.context": context, **obj})


@bp.patch("/groups/<group_id>")
def patch_group(group_id: str) -> Response:
    body = common.json_body()
    only_members = set(body) <= {"members@odata.bind"}
    common.require(common.MEMBER_WRITE if only_members else common.GROUP_WRITE, write=True)
    with common.store().transaction() as conn:
        directory.update_group(conn, common.tenant(), group_id, body)
    return common.no_content()


@bp.delete("/groups/<group_id>")
def delete_group(group_id: str) -> Response:
    common.require(common.GROUP_WRITE, write=True)
    with common.store().transaction() as conn:
        directory.delete_group(conn, common.tenant(), group_id)
    return common.no_content()


# ---------------------------------------------------------------------------------------------- members/owners

@bp.get("/groups/<group_id>/members")
def list_members(group_id: str) -> Response:
    common.require(common.GROUP_READ)
    return relations.group_relation(group_id, "member")


@bp.get("/groups/<group_id>/members/microsoft.graph.user")
def list_user_members(group_id: str) -> Response:
    """The members that are users (an OData cast): `$filter`, `$search`, `$orderby` and `$count` apply to them
    as on /users (docs/microsoft.md §5.11)."""
    common.require(common.GROUP_READ)
    _group_row(group_id)
    return listing.list_collection(listing.USERS, members_of=group_id)


@bp.get("/groups/<group_id>/members/$count")
def count_members(group_id: str) -> Response:
    common.require(common.GROUP_READ)
    return relations.group_relation_count(group_id, "member")


@bp.get("/groups/<group_id>/owners")
def list_owners(group_id: str) -> Response:
    common.require(common.GROUP_READ)
    return relations.group_relation(group_id, "owner")


@bp.get("/groups/<group_id>/transitiveMembers")
def list_transitive_members(group_id: str) -> Response:
    common.require(common.GROUP_READ)
    conn = common.db()
    _group_row(group_id)
    seen: set[str] = set()
    frontier = [group_id]
    while frontier:
        nxt = []
        for gid in frontier:
            for (mid,) in conn.execute("SELECT member_id FROM memberships WHERE group_id = ? AND "
                                       "relation = 'member'", (gid,)):
                if mid not in seen:
                    seen.add(mid)
                    nxt.append(mid)
        frontier = nxt
    select = relations.parse_select()
    context = common.context_url("directoryObjects" + common.select_suffix(select))
    return relations.page_of_ids(sorted(seen), context, select)


def _ref_target() -> str:
    body = common.json_body()
    ref = body.get("@odata.id")
    if not isinstance(ref, str) or not ref:
        raise bad_request("Invalid value specified for property '@odata.id' of resource 'DirectoryObject'.")
    return directory.bind_target(ref)


@bp.post("/groups/<group_id>/members/$ref")
def add_member(group_id: str) -> Response:
    common.require(common.MEMBER_WRITE, write=True)
    target = _ref_target()
    with common.store().transaction() as conn:
        directory.add_member(conn, common.tenant(), group_id, target)
    return common.no_content()


@bp.post("/groups/<group_id>/owners/$ref")
def add_owner(group_id: str) -> Response:
    common.require(common.GROUP_WRITE, write=True)
    target = _ref_target()
    with common.store().transaction() as conn:
        directory.add_member(conn, common.tenant(), group_id, target, relation="owner")
    return common.no_content()


@bp.delete("/groups/<group_id>/members/<member_id>/$ref")
def remove_member(group_id: str, member_id: str) -> Response:
    common.require(common.MEMBER_WRITE, write=True)
    with common.store().transaction() as conn:
        directory.remove_member(conn, common.tenant(), group_id, member_id)
    return common.no_content()


@bp.delete("/groups/<group_id>/owners/<member_id>/$ref")
def remove_owner(group_id: str, member_id: str) -> Response:
    common.require(common.GROUP_WRITE, write=True)
    with common.store().transaction() as conn:
        directory.remove_member(conn, common.tenant(), group_id, member_id, relation="owner")
    return common.no_content()


@bp.delete("/groups/<group_id>/members/<member_id>")
def delete_member_object(group_id: str, member_id: str) -> Response:
    """Without `/$ref` Graph deletes the member object itself (pitfall 13) when the caller may do so."""
    common.require(common.MEMBER_WRITE, write=True)
    conn = common.db()
    _group_row(group_id)
    if conn.execute("SELECT 1 FROM memberships WHERE group_id = ? AND relation = 'member' AND member_id = ?",
                    (group_id, member_id)).fetchone() is None:
        raise directory.not_found(member_id)
    kind = directory.object_kind(conn, common.tenant(), member_id)
    common.require(common.USER_WRITE if kind == "user" else common.GROUP_WRITE, write=True)
    with common.store().transaction() as wconn:
        if kind == "user":
            directory.delete_user(wconn, common.tenant(), member_id)
        else:
            directory.delete_group(wconn, common.tenant(), member_id)
    return common.no_content()
