"""/users/delta and /groups/delta (docs/microsoft.md §6).

State lives in opaque tokens: the initial round pages through current objects by `seq`; the deltaLink holds the
`changes` high-water mark; a later round pages through objects changed since then. Tokens minted under an older
`delta_epoch` (or older than 7 days) answer 410 Gone with a Location for a fresh round.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from flask import Response, current_app, request

from emulator import clock, directory
from emulator.graph import bp, common, listing, odata
from emulator.graph.errors import GraphError, bad_request, unsupported_query

DEFAULT_PAGE = 200
TOKEN_LIFETIME = 7 * 24 * 3600


def _epoch() -> int:
    settings = current_app.extensions.get("emulator.settings")
    if settings is not None and hasattr(settings, "delta_epoch"):
        return int(settings.delta_epoch)
    return int(common.store().get_setting("delta_epoch", "0") or 0)


def _page_size() -> int:
    m = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", request.headers.get("Prefer", ""))
    return max(1, min(999, int(m.group(1)))) if m else DEFAULT_PAGE


def _high_water(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(seq) FROM changes WHERE tenant_id = ?", (common.tenant(),)).fetchone()
    return int(row[0] or 0)


def _delta_path(kind: listing.Kind) -> str:
    return f"/v1.0/{kind.entity_set}/delta"


def _fresh_url(kind: listing.Kind, state: dict[str, Any]) -> str:
    """The first-call URL of the round `state` belongs to (same $select and id filter)."""
    params = {}
    if state.get("sel"):
        params["$select"] = ",".join(state["sel"])
    if state.get("ids"):
        params["$filter"] = " or ".join(f"id eq '{i}'" for i in state["ids"])
    return common.link_with(params, _delta_path(kind))


def _gone(kind: listing.Kind, state: dict[str, Any]) -> GraphError:
    return GraphError(410, "syncStateNotFound",
                      "The sync state generation is not found or has expired. Restart the sync without a token.",
                      {"Location": _fresh_url(kind, state)})


def _filter_ids(text: str | None) -> list[str] | None:
    """Ids of `$filter=id eq '...' or id eq '...'` (the only filter delta supports; at most 50)."""
    if text is None:
        return None
    ids: list[str] = []

    def walk(node: odata.Node) -> None:
        if isinstance(node, odata.BoolOp) and node.op == "or":
            walk(node.left)
            walk(node.right)
        elif (isinstance(node, odata.Compare) and node.prop == "id" and node.op == "eq"
              and isinstance(node.value, odata.Literal) and node.value.kind in ("str", "guid")):
            ids.append(str(node.value.value).lower())
        else:
            raise unsupported_query("Delta queries support $filter only as id eq '...' clauses joined with 'or'.")

    walk(odata.parse_filter(text))
    if len(ids) > 50:
        raise unsupported_query("Delta queries support at most 50 ids in $filter.")
    return ids


def _id_clause(column: str, ids: list[str] | None) -> tuple[str, list[str]]:
    if ids is None:
        return "", []
    return f" AND lower({column}) IN ({', '.join('?' * len(ids)) or 'NULL'})", list(ids)


def _members_of(conn: sqlite3.Connection, group_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT m.member_id, g.id IS NOT NULL FROM memberships m LEFT JOIN groups g ON g.id = m.member_id "
        "WHERE m.group_id = ? AND m.relation = 'member' ORDER BY m.member_id", (group_id,))
    return [{"@odata.type": "#microsoft.graph.group" if is_group else "#microsoft.graph.user", "id": mid}
            for mid, is_group in rows]


def _member_changes(conn: sqlite3.Connection, group_id: str, low: int, high: int) -> list[dict[str, Any]]:
    final: dict[str, bool] = {}
    for mid, removed in conn.execute(
            "SELECT member_id, member_removed FROM changes WHERE tenant_id = ? AND kind = 'group' AND "
            "object_id = ? AND member_id IS NOT NULL AND seq > ? AND seq <= ? ORDER BY seq",
            (common.tenant(), group_id, low, high)):
        final[mid] = bool(removed)
    out = []
    for mid, removed in final.items():
        kind = directory.object_kind(conn, common.tenant(), mid) or "user"
        item: dict[str, Any] = {"@odata.type": f"#microsoft.graph.{kind}", "id": mid}
        if removed:
            item["@removed"] = {"reason": "deleted"}
        out.append(item)
    return out


def _render(conn: sqlite3.Connection, kind: listing.Kind, rows: list[sqlite3.Row],
            select: list[str] | None) -> list[dict[str, Any]]:
    props = [p for p in select if p != "members"] if select else None
    out = kind.projected(conn, rows, props)
    for item, row in zip(out, rows, strict=True):
        item.setdefault("id", row["id"])
    return out


def _respond(kind: listing.Kind, items: list[dict], state: dict[str, Any], more: bool) -> Response:
    select = state.get("sel")
    payload: dict[str, Any] = {"@odata.context": common.context_url(kind.entity_set + common.select_suffix(select))}
    if more:
        payload["@odata.nextLink"] = common.link_with({"$skiptoken": odata.encode_token(state)}, _delta_path(kind))
    else:
        link_state = {"k": state["k"], "t": state["t"], "e": state["e"], "sel": select, "m": "delta",
                      "w": state["w"], "iat": clock.now()}
        if "ids" in state:
            link_state["ids"] = state["ids"]
        payload["@odata.deltaLink"] = common.link_with({"$deltatoken": odata.encode_token(link_state)},
                                                       _delta_path(kind))
    payload["value"] = items
    return common.odata_json(payload)


def _initial_page(conn: sqlite3.Connection, kind: listing.Kind, state: dict[str, Any]) -> Response:
    size = _page_size()
    t = kind.table
    clause, ids = _id_clause("id", state.get("ids"))
    rows = conn.execute(f"SELECT * FROM {t} WHERE tenant_id = ? AND seq > ?{clause} "  # noqa: S608
                        "ORDER BY seq LIMIT ?", (common.tenant(), state["s"], *ids, size + 1)).fetchall()
    more = len(rows) > size
    rows = rows[:size]
    select = state.get("sel")
    items = _render(conn, kind, rows, select)
    if select and "members" in select:
        for item in items:
            item["members@delta"] = _members_of(conn, item["id"])
    if rows:
        state = dict(state, s=rows[-1]["seq"])
    return _respond(kind, items, state, more)


def _incremental_page(conn: sqlite3.Connection, kind: listing.Kind, state: dict[str, Any]) -> Response:
    size = _page_size()
    select = state.get("sel")
    with_members = bool(select and "members" in select and kind.table == "groups")
    member_clause = "" if with_members else " AND member_id IS NULL"
    id_clause, ids = _id_clause("object_id", state.get("ids"))
    changed = conn.execute(
        "SELECT object_id, max(seq) AS last FROM changes WHERE tenant_id = ? AND kind = ? AND seq > ? "  # noqa: S608
        f"AND seq <= ?{member_clause}{id_clause} GROUP BY object_id HAVING max(seq) > ? ORDER BY last LIMIT ?",
        (common.tenant(), kind.table[:-1], state["f"], state["w"], *ids, state["c"], size + 1)).fetchall()
    more = len(changed) > size
    changed = changed[:size]
    ids = [r["object_id"] for r in changed]
    rows = {}
    if ids:
        marks = ",".join("?" * len(ids))
        rows = {r["id"]: r for r in conn.execute(
            f"SELECT * FROM {kind.table} WHERE tenant_id = ? AND id IN ({marks})",  # noqa: S608
            [common.tenant(), *ids])}
    rendered = {item["id"]: item for item in _render(conn, kind, list(rows.values()), select)}
    items = []
    for oid in ids:
        if oid in rendered:
            item = rendered[oid]
            if with_members:
                item["members@delta"] = _member_changes(conn, oid, state["f"], state["w"])
        else:
            reason = conn.execute("SELECT removed FROM changes WHERE tenant_id = ? AND object_id = ? AND "
                                  "removed IS NOT NULL ORDER BY seq DESC LIMIT 1",
                                  (common.tenant(), oid)).fetchone()
            item = {"id": oid, "@removed": {"reason": reason[0] if reason else "deleted"}}
        items.append(item)
    if changed:
        state = dict(state, c=changed[-1]["last"])
    return _respond(kind, items, state, more)


def run_delta(kind: listing.Kind) -> Response:
    conn = common.db()
    args = request.args
    for option in ("$top", "$orderby", "$expand", "$search"):
        if option in args:
            raise unsupported_query(f"The query option '{option}' is not supported on delta queries.")
    token = args.get("$skiptoken") or args.get("$deltatoken")
    epoch = _epoch()
    if token is None or token == "latest":
        extra = ("members",) if kind.table == "groups" else ()
        select = odata.parse_select(args.get("$select"), kind.schema, extra)
        if select is not None and "id" not in select:
            select = ["id", *select]
        state = {"k": kind.table, "t": common.tenant(), "e": epoch, "sel": select, "w": _high_water(conn)}
        ids = _filter_ids(args.get("$filter"))
        if ids is not None:
            state["ids"] = ids
        if token == "latest":
            return _respond(kind, [], state, more=False)
        return _initial_page(conn, kind, dict(state, m="init", s=0))
    state = odata.decode_token(token)
    if state is None or state.get("k") != kind.table or state.get("t") != common.tenant():
        raise bad_request("The delta token or skip token is not valid for this request.")
    if int(state.get("e", -1)) < epoch or (state.get("iat") is not None
                                           and clock.now() - float(state["iat"]) > TOKEN_LIFETIME):
        raise _gone(kind, state)
    mode = state.get("m")
    if mode == "init":
        return _initial_page(conn, kind, state)
    if mode == "delta":
        state = {"k": state["k"], "t": state["t"], "e": state["e"], "sel": state.get("sel"), "m": "inc",
                 "f": state["w"], "w": _high_water(conn), "c": 0, **({"ids": state["ids"]} if "ids" in state else {})}
    return _incremental_page(conn, kind, state)


@bp.get("/users/delta")
@bp.get("/users/delta()")
def users_delta() -> Response:
    common.require(common.USER_READ)
    return run_delta(listing.USERS)


@bp.get("/groups/delta")
@bp.get("/groups/delta()")
def groups_delta() -> Response:
    common.require(common.GROUP_READ)
    return run_delta(listing.GROUPS)
