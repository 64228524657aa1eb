"""Collection listing for /users and /groups: $filter in SQL, $search in Python, keyset paging on `seq`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import Response, request

from emulator import directory
from emulator.graph import common, odata
from emulator.graph.errors import bad_request, unsupported_query

SEARCH_NEEDS_HEADER = ("Request with $search query parameter only works through MSGraph with a special request "
                       "header: 'ConsistencyLevel: eventual'")

EXPIRED_TOKEN = "The specified page token value has expired and can no longer be included in your request."
USER_DEFAULT = ("businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id")
GROUP_DEFAULT = tuple(p for p in odata.GROUP_SELECT if p != "serviceProvisioningErrors")


@dataclass(frozen=True)
class Kind:
    table: str
    schema: odata.Schema
    default: tuple[str, ...]
    entity_set: str
    odata_type: str

    def to_graph(self, conn: sqlite3.Connection, rows: list[sqlite3.Row], select: list[str] | None) -> list[dict]:
        """Full Graph JSON of rows (licences fetched in one query only when selected)."""
        if self.table == "users":
            lic: dict[str, list[dict]] = {}
            if select and "assignedLicenses" in select:
                lic = directory.licences_for(conn, [r["id"] for r in rows])
            return [directory.user_to_graph(r, lic.get(r["id"], [])) for r in rows]
        return [directory.group_to_graph(r) for r in rows]

    def projected(self, conn: sqlite3.Connection, rows: list[sqlite3.Row], select: list[str] | None) -> list[dict]:
        """Rows as Graph JSON restricted to `select` (or the default set)."""
        if self.table == "users":
            keys = select or self.default
            lic: dict[str, list[dict]] = {}
            if "assignedLicenses" in keys:
                lic = directory.licences_for(conn, [r["id"] for r in rows])
            return [directory.user_projection(r, keys, lic.get(r["id"], [])) for r in rows]
        return [common.project(obj, select, self.default) for obj in self.to_graph(conn, rows, select)]


USERS = Kind("users", odata.USER_SCHEMA, USER_DEFAULT, "users", "#microsoft.graph.user")
GROUPS = Kind("groups", odata.GROUP_SCHEMA, GROUP_DEFAULT, "groups", "#microsoft.graph.group")


def skip_after(key: str = "s") -> Any:
    """The keyset position in `$skiptoken` (None on the first page); 400 for a token that is not ours."""
    raw = request.args.get("$skiptoken")
    if raw is None:
        return None
    state = odata.decode_token(raw)
    if state is None or key not in state:
        raise bad_request(EXPIRED_TOKEN)
    return state[key]


def _token_fits(after: Any, ordered: bool) -> bool:
    if ordered:
        return (isinstance(after, list) and len(after) == 2 and isinstance(after[0], str)
                and isinstance(after[1], int))
    return isinstance(after, int)


def _check_unsupported_options() -> None:
    if "$skip" in request.args:
        raise bad_request("'$skip' is not supported by the service.")
    if "$expand" in request.args:
        raise unsupported_query("$expand is not supported by the emulator on this resource.")


_ORDERABLE = {"users": {"displayName": "display_name", "userPrincipalName": "user_principal_name",
                        "createdDateTime": "created"},
              "groups": {"displayName": "display_name"}}
#: Sortable only as an advanced query (docs/microsoft.md §5.11: the "Supports $orderby" table).
_ORDER_ADVANCED = {"createdDateTime"}


def _order(kind: Kind, filtered: bool) -> tuple[str, bool] | None:
    """(column, descending) from `$orderby`: displayName (and userPrincipalName for users) by default,
    createdDateTime of users and any sort combined with `$filter` only as an advanced query
    (docs/microsoft.md §5.0, §5.11)."""
    raw = request.args.get("$orderby")
    if raw is None:
        return None
    parts = raw.split()
    allowed = {k.lower(): k for k in _ORDERABLE[kind.table]}
    name = allowed.get(parts[0].lower()) if parts else None
    if (name is None or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc"))
            or ((filtered or name in _ORDER_ADVANCED) and not common.advanced())):
        raise unsupported_query("Sorting not supported for current query.")
    return _ORDERABLE[kind.table][name], len(parts) == 2 and parts[1].lower() == "desc"


def _iter_rows(conn: sqlite3.Connection, sql: str, params: list[Any]) -> Iterator[sqlite3.Row]:
    cur = conn.execute(sql, params)
    while True:
        chunk = cur.fetchmany(500)
        if not chunk:
            return
        yield from chunk


def list_collection(kind: Kind, *, members_of: str | None = None) -> Response:
    """GET /users or /groups with $select, $top, $filter, $search, $count, $orderby and $skiptoken.

    `members_of`: only the direct members of that group, typed (`/groups/{id}/members/microsoft.graph.user`,
    the OData cast on which Graph takes the same query options; docs/microsoft.md §5.11)."""
    _check_unsupported_options()
    top = odata.parse_top(request.args.get("$top"))
    select = odata.parse_select(request.args.get("$select"), kind.schema)
    want_count = common.check_count_param()
    search_text = request.args.get("$search")
    if search_text is not None and not common.eventual():
        raise bad_request(SEARCH_NEEDS_HEADER, code="Request_UnsupportedQuery")
    where, params = odata.filter_sql(request.args.get("$filter"), kind.schema, common.advanced())
    search = odata.parse_search(search_text.strip(), kind.schema) if search_text is not None else None
    if search is not None:
        pre, pre_params = odata.search_prefilter(search, kind.schema)
        where, params = f"({where}) AND {pre}", [*params, *pre_params]
    after = skip_after()
    if after is not None and not _token_fits(after, "$orderby" in request.args):
        raise bad_request(EXPIRED_TOKEN)
    conn = common.db()
    t = kind.table
    base_where = f"{t}.tenant_id = ? AND ({where})"
    base_params = [common.tenant(), *params]
    if members_of is not None:
        if f"{t}.id IN (" in where or f"{t}.id = " in where:  # a few ids: look each one up in the membership key
            base_where += (f" AND EXISTS (SELECT 1 FROM memberships WHERE group_id = ? "  # noqa: S608
                           f"AND relation = 'member' AND member_id = {t}.id)")
        else:  # otherwise the group's member list drives (a correlated lookup per user would scan the tenant)
            base_where += (f" AND {t}.id IN (SELECT member_id FROM memberships WHERE group_id = ? "  # noqa: S608
                           "AND relation = 'member')")
        base_params.append(members_of)

    count: int | None = None
    if want_count and after is None:
        if search is None:
            count = conn.execute(f"SELECT count(*) FROM {t} WHERE {base_where}",  # noqa: S608
                                 base_params).fetchone()[0]
        else:
            count = sum(1 for row in _iter_rows(conn, f"SELECT * FROM {t} WHERE {base_where}",  # noqa: S608
                                                base_params)
                        if odata.search_matches(search, kind.to_graph(conn, [row], None)[0]))

    order = _order(kind, "$filter" in request.args)
    if order is None:
        page_sql = f"SELECT * FROM {t} WHERE {base_where} AND {t}.seq > ? ORDER BY {t}.seq"  # noqa: S608
        page_params = [*base_params, int(after or 0)]
    else:
        column, desc = order
        key = f"COALESCE(lower({t}.{column}), '')"
        direction = " DESC" if desc else ""
        op = "<" if desc else ">"
        # (key, seq) past the token's, spelled so that SQLite walks the sort's index (emulator/store.py) from there
        cond = f" AND {key} {op}= ? AND ({key} {op} ? OR {t}.seq {op} ?)" if after is not None else ""
        page_sql = (f"SELECT *, {key} AS sort_key FROM {t} WHERE {base_where}{cond} "  # noqa: S608
                    f"ORDER BY {key}{direction}, {t}.seq{direction}")
        page_params = [*base_params, *([after[0], *after] if after is not None else [])]
    rows: list[sqlite3.Row] = []
    if search is None:
        rows = conn.execute(page_sql + " LIMIT ?", [*page_params, top + 1]).fetchall()
    else:
        for row in _iter_rows(conn, page_sql, page_params):
            if odata.search_matches(search, kind.to_graph(conn, [row], None)[0]):
                rows.append(row)
                if len(rows) > top:
                    break
    more = len(rows) > top
    rows = rows[:top]
    items = kind.projected(conn, rows, select)
    if members_of is not None:
        items = [{"@odata.type": kind.odata_type, **item} for item in items]
    token = None
    if more and rows:
        last = rows[-1]
        token = odata.encode_token({"s": [last["sort_key"], last["seq"]]} if order else {"s": last["seq"]})
    context = common.context_url(kind.entity_set + common.select_suffix(select))
    return common.collection(context, items, next_token=token, count=count)


def count_collection(kind: Kind) -> Response:
    """GET /users/$count or /groups/$count (text/plain; needs ConsistencyLevel: eventual)."""
    if not common.eventual():
        raise bad_request("$count is not currently supported.")
    where, params = odata.filter_sql(request.args.get("$filter"), kind.schema, True)
    t = kind.table
    n = common.db().execute(f"SELECT count(*) FROM {t} WHERE {t}.tenant_id = ? AND ({where})",  # noqa: S608
                            [common.tenant(), *params]).fetchone()[0]
    return common.text_plain(str(n))
