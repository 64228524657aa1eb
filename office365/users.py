"""User List and Find Users."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from office365 import odata
from office365.errors import FieldError, NotFound
from office365.graph import BatchRequest
from office365.listing import ListQuery, graph_params
from office365.registry import (
    FindMode,
    GraphAccess,
    checked_cursor,
    checked_page_size,
    checked_query,
    operation,
    user_path_key,
)

# -- users ---------------------------------------------------------------------------------------------------

USER_FIELDS = (
    "id,displayName,userPrincipalName,mail,jobTitle,department,accountEnabled,usageLocation,assignedLicenses"
)


@dataclass(frozen=True)
class User:
    id: str
    display_name: str | None
    user_principal_name: str | None
    mail: str | None = None
    job_title: str | None = None
    department: str | None = None
    account_enabled: bool | None = None
    usage_location: str | None = None
    licence_sku_ids: tuple[str, ...] = ()

    @classmethod
    def from_graph(cls, d: dict[str, Any]) -> User:
        return cls(
            id=d["id"],
            display_name=d.get("displayName"),
            user_principal_name=d.get("userPrincipalName"),
            mail=d.get("mail"),
            job_title=d.get("jobTitle"),
            department=d.get("department"),
            account_enabled=d.get("accountEnabled"),
            usage_location=d.get("usageLocation"),
            licence_sku_ids=tuple(a["skuId"] for a in d.get("assignedLicenses") or [] if "skuId" in a),
        )


@dataclass(frozen=True)
class UserPage:
    users: list[User]
    next_cursor: str | None  # pass back as `cursor` for the next page
    request_id: str | None
    count: int | None = None


@operation("list_users", "User List", "read", ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All"))
def list_users(
    access: GraphAccess, *, page_size: int = 100, cursor: str | None = None, query: ListQuery | None = None
) -> UserPage:
    """One page of users (server-side paging) with the total; `cursor` is the previous page's `next_cursor`.

    `query` narrows (prefix search, filters) and sorts the list; it is an advanced query so Graph counts it.
    """
    query = query or ListQuery(page_size=page_size)
    params = graph_params("users", query, USER_FIELDS)
    params["$top"] = checked_page_size(query.page_size)
    page = access.client.get_page(checked_cursor(access, cursor, "/users"), params=params, advanced=True)
    return UserPage([User.from_graph(u) for u in page.items], page.next_link, page.request_id, page.count)


def iter_users(access: GraphAccess, *, select: str = USER_FIELDS, page_size: int = 999) -> Iterator[User]:
    """Every user of the tenant, page by page: memory stays flat however large the tenant."""
    for item in access.client.iter_items("/users", params={"$select": select, "$top": checked_page_size(page_size)}):
        yield User.from_graph(item)


@operation("find_users", "Find Users", "read", ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All"))
def find_users(
    access: GraphAccess,
    query: str,
    *,
    mode: FindMode = "prefix",
    page_size: int = 25,
    cursor: str | None = None,
) -> UserPage:
    """Users whose name, mail or UPN starts with `query` (`prefix`), or Graph `$search` token matching."""
    query = checked_query(query)
    params: dict[str, str | int] = {"$select": USER_FIELDS, "$top": checked_page_size(page_size)}
    props = ("displayName", "mail", "userPrincipalName")
    if mode == "search":
        params["$search"] = odata.search_any(props, query)
        params["$count"] = "true"
    elif mode == "prefix":
        params["$filter"] = odata.any_of(*(odata.startswith(p, query) for p in props))
    else:
        raise FieldError("mode", "Search mode must be 'prefix' or 'search'.")
    page = access.client.get_page(checked_cursor(access, cursor, "/users"), params=params, advanced=mode == "search")
    return UserPage([User.from_graph(u) for u in page.items], page.next_link, page.request_id, page.count)


def get_user(access: GraphAccess, user_id: str) -> User:
    """One user (by object id or UPN), for the user page."""
    key = user_path_key(user_id)
    try:
        body = access.client.get(f"/users/{key}", params={"$select": USER_FIELDS}).body
    except NotFound as exc:
        raise NotFound(
            f"The user {user_id} does not exist in the tenant. Check the id; it may have been deleted.",
            status=404, code=exc.code, graph_message=exc.graph_message, request_id=exc.request_id,
        ) from exc
    return User.from_graph(body)


@dataclass(frozen=True)
class ResolvedUser:
    key: str  # what was asked for: an object id or a UPN
    user: User | None
    message: str = ""


def resolve_users(access: GraphAccess, keys: list[str]) -> list[ResolvedUser]:
    """Look up many users by id or UPN, 20 per `$batch` (for bulk previews); unknown ones come back with a message."""

    out: list[ResolvedUser] = []
    valid: list[tuple[str, str]] = []
    for raw in dict.fromkeys(k.strip() for k in keys if k.strip()):
        try:
            valid.append((raw, user_path_key(raw)))
        except FieldError as exc:
            out.append(ResolvedUser(raw, None, exc.message))
    items = (BatchRequest(str(i), "GET", f"/users/{path}?$select={USER_FIELDS}") for i, (_, path) in enumerate(valid))
    for res in access.client.iter_batch(items, idempotent=True):
        raw = valid[int(res.id)][0]
        if res.ok and isinstance(res.body, dict):
            out.append(ResolvedUser(raw, User.from_graph(res.body)))
        elif isinstance(res.error, NotFound):
            out.append(ResolvedUser(raw, None, "No such user in the tenant."))
        else:
            out.append(ResolvedUser(raw, None, str(res.error)))
    return out
