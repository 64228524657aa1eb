"""Group List, Find Groups, Create Group, Add User to Group, Remove User From Group."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from office365 import odata
from office365.bulk import add_members
from office365.errors import (
    NICKNAME_TAKEN_FRAGMENT,
    AlreadyMember,
    FieldError,
    InvalidRequest,
    MailNicknameTaken,
    NotAMember,
    NotFound,
)
from office365.graph import BatchRequest
from office365.listing import ListQuery, graph_params
from office365.registry import (
    FindMode,
    GraphAccess,
    checked_cursor,
    checked_object_id,
    checked_page_size,
    checked_query,
    operation,
    user_path_key,
)
from office365.scopes import GROUP_READ_SCOPES, MEMBER_WRITE_SCOPES

# -- groups --------------------------------------------------------------------------------------------------

GROUP_FIELDS = "id,displayName,description,mail,mailEnabled,mailNickname,securityEnabled,groupTypes"


class GroupType(StrEnum):
    SECURITY = "security"
    MICROSOFT_365 = "microsoft365"
    MAIL_ENABLED_SECURITY = "mail_enabled_security"
    DISTRIBUTION = "distribution"

    @property
    def label(self) -> str:
        return {
            "security": "Security",
            "microsoft365": "Microsoft 365",
            "mail_enabled_security": "Mail-enabled security",
            "distribution": "Distribution list",
        }[self.value]

    @classmethod
    def of(cls, d: dict[str, Any]) -> GroupType:
        if "Unified" in (d.get("groupTypes") or []):
            return cls.MICROSOFT_365
        if d.get("securityEnabled"):
            return cls.MAIL_ENABLED_SECURITY if d.get("mailEnabled") else cls.SECURITY
        return cls.DISTRIBUTION


@dataclass(frozen=True)
class Group:
    id: str
    display_name: str
    description: str | None
    mail: str | None
    mail_nickname: str | None
    type: GroupType
    member_count: int | None = None

    @classmethod
    def from_graph(cls, d: dict[str, Any], member_count: int | None = None) -> Group:
        return cls(
            id=d["id"],
            display_name=d.get("displayName") or "",
            description=d.get("description"),
            mail=d.get("mail"),
            mail_nickname=d.get("mailNickname"),
            type=GroupType.of(d),
            member_count=member_count,
        )


@dataclass(frozen=True)
class GroupPage:
    groups: list[Group]
    next_cursor: str | None
    request_id: str | None
    count: int | None = None


def _member_counts(access: GraphAccess, group_ids: Sequence[str]) -> dict[str, int | None]:
    """Member counts of a page of groups: `GET /groups/{id}/members/$count`, 20 per `$batch`."""
    counts: dict[str, int | None] = {}
    items = [
        BatchRequest(str(i), "GET", f"/groups/{gid}/members/$count", headers={"ConsistencyLevel": "eventual"})
        for i, gid in enumerate(group_ids)
    ]
    for result in access.client.iter_batch(items, idempotent=True):
        gid = group_ids[int(result.id)]
        counts[gid] = _as_count(result.body) if result.ok else None
    return counts


def _as_count(body: Any) -> int | None:
    if isinstance(body, bool):
        return None
    if isinstance(body, int):
        return body
    if isinstance(body, str):
        text = body.strip()
        if text.isdigit():
            return int(text)
        try:  # Graph base64-encodes non-JSON bodies inside $batch answers
            decoded = base64.b64decode(text, validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return int(decoded) if decoded.isdigit() else None
    return None


def _group_page(access: GraphAccess, page: Any, with_member_count: bool) -> GroupPage:
    counts = _member_counts(access, [g["id"] for g in page.items]) if with_member_count and page.items else {}
    groups = [Group.from_graph(g, counts.get(g["id"])) for g in page.items]
    return GroupPage(groups, page.next_link, page.request_id, page.count)




@operation("list_groups", "Group List", "read", GROUP_READ_SCOPES)
def list_groups(
    access: GraphAccess, *, page_size: int = 100, cursor: str | None = None, with_member_count: bool = True,
    query: ListQuery | None = None,
) -> GroupPage:
    """One page of groups with the total, their type and (one extra `$batch` per 20 groups) their member count.

    `query` narrows (prefix search, group type) and sorts the list (an advanced query, counted by Graph).
    """
    query = query or ListQuery(page_size=page_size)
    params = graph_params("groups", query, GROUP_FIELDS)
    params["$top"] = checked_page_size(query.page_size)
    page = access.client.get_page(checked_cursor(access, cursor, "/groups"), params=params, advanced=True)
    return _group_page(access, page, with_member_count)


@operation("find_groups", "Find Groups", "read", GROUP_READ_SCOPES)
def find_groups(
    access: GraphAccess,
    query: str,
    *,
    mode: FindMode = "prefix",
    page_size: int = 25,
    cursor: str | None = None,
    with_member_count: bool = True,
) -> GroupPage:
    """Groups whose name, mail or mail nickname starts with `query`, or `$search` on name and description."""
    query = checked_query(query)
    params: dict[str, str | int] = {"$select": GROUP_FIELDS, "$top": checked_page_size(page_size)}
    if mode == "search":
        params["$search"] = odata.search_any(("displayName", "description"), query)
        params["$count"] = "true"
    elif mode == "prefix":
        params["$filter"] = odata.any_of(
            *(odata.startswith(p, query) for p in ("displayName", "mail", "mailNickname"))
        )
    else:
        raise FieldError("mode", "Search mode must be 'prefix' or 'search'.")
    page = access.client.get_page(checked_cursor(access, cursor, "/groups"), params=params, advanced=mode == "search")
    return _group_page(access, page, with_member_count)


@dataclass(frozen=True)
class Member:
    id: str
    kind: str  # "user", "group", "device", ...
    display_name: str | None
    user_principal_name: str | None
    mail: str | None = None


@dataclass(frozen=True)
class MemberPage:
    members: list[Member]
    next_cursor: str | None
    request_id: str | None
    count: int | None = None
    users_only: bool = False  # the page lists the members that are users (a search or filter was applied)


MEMBER_FIELDS = "id,displayName,userPrincipalName,mail"


def _member(d: dict[str, Any]) -> Member:
    kind = (d.get("@odata.type") or "#microsoft.graph.user").rsplit(".", 1)[-1]
    return Member(d["id"], kind, d.get("displayName"), d.get("userPrincipalName"), d.get("mail"))


def _group_missing(gid: str, exc: NotFound) -> NotFound:
    return NotFound(
        f"The group {gid} does not exist in the tenant. Check the id; it may have been deleted.",
        status=404, code=exc.code, graph_message=exc.graph_message, request_id=exc.request_id,
    )


def members_path(group_id: str, *, users_only: bool) -> str:
    """`/groups/{id}/members`, or its OData cast to users, on which Graph searches, filters and sorts (§5.11)."""
    return f"/groups/{group_id}/members" + ("/microsoft.graph.user" if users_only else "")


def list_group_members(
    access: GraphAccess, group_id: str, *, page_size: int = 100, cursor: str | None = None,
    query: ListQuery | None = None,
) -> MemberPage:
    """One page of a group's members with the total, for the group page (a read under Group List's permissions).

    Without a search, filter or sort every member is listed (users, groups, devices); with one, the members that
    are users, searched by Graph itself on the members collection.
    """
    gid = checked_object_id(group_id, "group_id")
    query = query or ListQuery(page_size=page_size)
    users_only = query.narrowed or bool(query.sort)
    path = members_path(gid, users_only=users_only)
    params = graph_params("members", query, MEMBER_FIELDS)
    params["$top"] = checked_page_size(query.page_size)
    try:
        page = access.client.get_page(checked_cursor(access, cursor, path), params=params, advanced=True)
    except NotFound as exc:
        raise _group_missing(gid, exc) from exc
    return MemberPage([_member(m) for m in page.items], page.next_link, page.request_id, page.count, users_only)


def group_owners(access: GraphAccess, group_id: str, *, limit: int = 100) -> list[Member]:
    """A group's owners (`GET /groups/{id}/owners`, docs/microsoft.md §1.10): who may approve a request to join it.
    A read under Group List's permissions; at most `limit`."""
    gid = checked_object_id(group_id, "group_id")
    owners: list[Member] = []
    try:
        for item in access.client.iter_items(f"/groups/{gid}/owners", params={"$select": MEMBER_FIELDS}):
            owners.append(_member(item))
            if len(owners) >= limit:
                break
    except NotFound as exc:
        raise _group_missing(gid, exc) from exc
    return owners


def find_member(access: GraphAccess, group_id: str, user: str) -> Member | None:
    """Is this user (object id or UPN) a direct member of the group? One Graph request (docs/microsoft.md §5.11)."""
    gid = checked_object_id(group_id, "group_id")
    key = (user or "").strip()
    if odata.is_guid(key):
        flt = odata.eq("id", key.lower())
    elif "@" in key and len(key) <= 256:
        flt = odata.eq("userPrincipalName", key)
    else:
        raise FieldError("user", "Type a user's object id or user principal name (name@domain).")
    params: dict[str, str | int] = {"$filter": flt, "$select": MEMBER_FIELDS, "$count": "true", "$top": 1}
    try:
        page = access.client.get_page(members_path(gid, users_only=True), params=params, advanced=True)
    except NotFound as exc:
        raise _group_missing(gid, exc) from exc
    return _member({"@odata.type": "#microsoft.graph.user", **page.items[0]}) if page.items else None


def iter_group_members(access: GraphAccess, group_id: str, *, select: str = MEMBER_FIELDS) -> Iterator[Member]:
    """Every member of a group (users, groups, devices), page by page (999 a page: memory stays flat)."""
    gid = checked_object_id(group_id, "group_id")
    for item in access.client.iter_items(f"/groups/{gid}/members", params={"$select": select, "$top": 999}):
        yield _member(item)


# -- create group --------------------------------------------------------------------------------------------

_NICKNAME_FORBIDDEN = set('@()\\[]";:.<>, ')
MAX_NICKNAME = 64


def suggest_mail_nickname(display_name: str) -> str:
    """A valid mail nickname derived from a display name: "Équipe R&D (Paris)" -> "equipe-rd-paris"."""
    ascii_text = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    nick = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    nick = re.sub(r"-{2,}", "-", nick)[:MAX_NICKNAME].strip("-")
    return nick or "group"


def validate_mail_nickname(nickname: str, display_name: str = "") -> None:
    """Graph's rules: 1–64 ASCII characters, none of `@ ( ) \\ [ ] " ; : . < > ,` nor space."""
    suggestion = suggest_mail_nickname(display_name or nickname)
    if not nickname:
        raise FieldError("mail_nickname", "A mail nickname is required.", suggestion=suggestion)
    if len(nickname) > MAX_NICKNAME:
        raise FieldError(
            "mail_nickname", f"The mail nickname is longer than {MAX_NICKNAME} characters.", suggestion=suggestion
        )
    bad = sorted({c for c in nickname if ord(c) > 127 or ord(c) < 32 or c in _NICKNAME_FORBIDDEN})
    if bad:
        shown = " ".join("space" if c == " " else repr(c) for c in bad)
        raise FieldError(
            "mail_nickname",
            f"The mail nickname may not contain {shown}: use ASCII letters, digits, '-' or '_'.",
            suggestion=suggestion,
        )


@dataclass(frozen=True)
class NewGroup:
    display_name: str
    group_type: GroupType = GroupType.SECURITY
    mail_nickname: str | None = None  # None: derived from the display name
    description: str | None = None
    owners: tuple[str, ...] = ()
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class CreatedGroup:
    group: Group
    request_id: str | None
    member_results: list[Any] = field(default_factory=list)  # bulk.ItemResult per initial member


def _nickname_taken(access: GraphAccess, nickname: str) -> bool:
    resp = access.client.get(
        "/groups", params={"$filter": odata.eq("mailNickname", nickname), "$select": "id", "$top": 1}
    )
    return bool(resp.body.get("value")) if isinstance(resp.body, dict) else False


def _free_nickname(access: GraphAccess, nickname: str) -> str:
    """The first `nickname-N` not yet used (one prefix query)."""
    base = nickname[: MAX_NICKNAME - 4]
    try:
        taken = {
            (g.get("mailNickname") or "").lower()
            for g in access.client.iter_items(
                "/groups",
                params={"$filter": odata.startswith("mailNickname", base), "$select": "mailNickname", "$top": 999},
            )
        }
    except InvalidRequest:
        taken = {nickname.lower()}
    for n in range(2, 1000):
        candidate = f"{base}-{n}"
        if candidate.lower() not in taken:
            return candidate
    return f"{base}-{len(taken) + 2}"


@operation("create_group", "Create Group", "write", ("Group.ReadWrite.All", "Directory.ReadWrite.All"))
def create_group(access: GraphAccess, new: NewGroup) -> CreatedGroup:
    """Create a security or Microsoft 365 group with owners, then add the initial members in bulk.

    Members are added after creation (20 per request, per-member results) so that one bad id does not
    prevent the group from being created.
    """
    name = (new.display_name or "").strip()
    if not name:
        raise FieldError("display_name", "A display name is required.")
    if len(name) > 256:
        raise FieldError("display_name", "The display name is longer than 256 characters.")
    group_type = GroupType(new.group_type)
    if group_type not in (GroupType.SECURITY, GroupType.MICROSOFT_365):
        raise FieldError(
            "group_type",
            "Graph can only create security and Microsoft 365 groups; create mail-enabled security groups and "
            "distribution lists in the Exchange admin center.",
        )
    nickname = new.mail_nickname.strip() if new.mail_nickname else suggest_mail_nickname(name)
    validate_mail_nickname(nickname, name)
    if new.description is not None and len(new.description) > 1024:
        raise FieldError("description", "The description is longer than 1024 characters.")
    owners = [checked_object_id(o, "owner_id") for o in dict.fromkeys(new.owners)]
    if len(owners) > 20:
        raise FieldError("owners", "At most 20 owners can be set when creating a group.")
    members = [checked_object_id(m, "member_id") for m in dict.fromkeys(new.members)]

    client = access.client
    if _nickname_taken(access, nickname):
        raise MailNicknameTaken(
            "mail_nickname",
            f"The mail nickname {nickname!r} is already used by another group; choose another one.",
            suggestion=_free_nickname(access, nickname),
            request_id=client.last_request_id,
        )
    body: dict[str, Any] = {
        "displayName": name,
        "mailNickname": nickname,
        "mailEnabled": group_type is GroupType.MICROSOFT_365,
        "securityEnabled": group_type is GroupType.SECURITY,
        "groupTypes": ["Unified"] if group_type is GroupType.MICROSOFT_365 else [],
    }
    if new.description:
        body["description"] = new.description
    if owners:
        body["owners@odata.bind"] = [client.absolute(f"/users/{o}") for o in owners]
    try:
        resp = client.request("POST", "/groups", json_body=body)
    except InvalidRequest as exc:
        message = exc.graph_message or ""
        if NICKNAME_TAKEN_FRAGMENT in message:
            raise MailNicknameTaken(
                "mail_nickname",
                f"The mail nickname {nickname!r} is already used; choose another one.",
                suggestion=_free_nickname(access, nickname),
                request_id=exc.request_id,
            ) from exc
        if "mailNickname" in message:
            raise FieldError(
                "mail_nickname", f"Graph refused the mail nickname: {message}",
                suggestion=suggest_mail_nickname(name), request_id=exc.request_id,
            ) from exc
        raise
    except NotFound as exc:
        raise FieldError(
            "owners", f"An owner does not exist in the tenant: {exc.graph_message} Check the owners.",
            request_id=exc.request_id,
        ) from exc
    group = Group.from_graph(resp.body)
    results: list[Any] = []
    if members:
        results = add_members(access, group.id, members).items
    return CreatedGroup(group, resp.request_id, results)


# -- membership ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MembershipResult:
    group_id: str
    user_id: str
    outcome: Literal["added", "already_member", "removed"]
    message: str
    request_id: str | None


def _which_missing(access: GraphAccess, exc: NotFound, group_id: str, user_id: str) -> NotFound:
    """A 404 on a membership call names no side: find out whether the group or the user is missing."""
    for path, what in ((f"/groups/{group_id}", "group"), (f"/users/{user_id}", "user")):
        try:
            access.client.get(path, params={"$select": "id"})
        except NotFound as missing:
            return NotFound(
                f"The {what} {path.rsplit('/', 1)[-1]} does not exist in the tenant. "
                "Check the id; it may have been deleted. Refresh the list and try again.",
                status=404, code=missing.code, graph_message=missing.graph_message,
                request_id=exc.request_id,
            )
    return exc


@operation("add_user_to_group", "Add User to Group", "write", MEMBER_WRITE_SCOPES)
def add_user_to_group(access: GraphAccess, group_id: str, user_id: str) -> MembershipResult:
    """Add one user; "already a member" is an outcome, not a failure."""
    gid, uid = checked_object_id(group_id, "group_id"), checked_object_id(user_id, "user_id")
    client = access.client
    try:
        resp = client.request(
            "POST",
            f"/groups/{gid}/members/$ref",
            json_body={"@odata.id": client.absolute(f"/directoryObjects/{uid}")},
        )
    except AlreadyMember as exc:
        return MembershipResult(gid, uid, "already_member", "The user is already a member of the group.",
                                exc.request_id)
    except NotFound as exc:
        raise _which_missing(access, exc, gid, uid) from exc
    return MembershipResult(gid, uid, "added", "The user was added to the group.", resp.request_id)


@operation("remove_user_from_group", "Remove User From Group", "write", MEMBER_WRITE_SCOPES)
def remove_user_from_group(access: GraphAccess, group_id: str, user_id: str) -> MembershipResult:
    """Remove the membership (`DELETE .../members/{id}/$ref`); never the form that deletes the user."""
    gid, uid = checked_object_id(group_id, "group_id"), checked_object_id(user_id, "user_id")
    try:
        resp = access.client.request("DELETE", f"/groups/{gid}/members/{uid}/$ref")
    except NotFound as exc:
        missing = _which_missing(access, exc, gid, uid)
        if missing is not exc:
            raise missing from exc
        raise NotAMember(
            "The user is not a member of the group; nothing was changed. Refresh the member list.",
            status=404, code=exc.code, graph_message=exc.graph_message, request_id=exc.request_id,
        ) from exc
    return MembershipResult(gid, uid, "removed", "The user was removed from the group.", resp.request_id)


# -- reads for the group and user pages ------------------------------------------------------------------------


def get_group(access: GraphAccess, group_id: str, *, with_member_count: bool = True) -> Group:
    """One group with its type (and member count), for the group page."""
    gid = checked_object_id(group_id, "group_id")
    try:
        resp = access.client.get(f"/groups/{gid}", params={"$select": GROUP_FIELDS})
    except NotFound as exc:
        raise NotFound(
            f"The group {gid} does not exist in the tenant. Check the id; it may have been deleted.",
            status=404, code=exc.code, graph_message=exc.graph_message, request_id=exc.request_id,
        ) from exc
    count = _member_counts(access, [gid]).get(gid) if with_member_count else None
    return Group.from_graph(resp.body, count)


def user_groups(access: GraphAccess, user_id: str, *, limit: int = 200) -> list[Group]:
    """The groups a user is a direct member of (`GET /users/{id}/memberOf`), at most `limit` (see
    `user_group_page` for the paged list with its total)."""
    key = user_path_key(user_id)
    groups: list[Group] = []
    try:
        for item in access.client.iter_items(f"/users/{key}/memberOf", params={"$select": GROUP_FIELDS}):
            if item.get("@odata.type", "#microsoft.graph.group") == "#microsoft.graph.group":
                groups.append(Group.from_graph(item))
            if len(groups) >= limit:
                break
    except NotFound as exc:
        raise _user_missing(user_id, exc) from exc
    return groups


def _user_missing(user_id: str, exc: NotFound) -> NotFound:
    return NotFound(
        f"The user {user_id} does not exist in the tenant. Check the id; it may have been deleted.",
        status=404, code=exc.code, graph_message=exc.graph_message, request_id=exc.request_id,
    )


def user_group_page(access: GraphAccess, user_id: str, *, page_size: int = 50, cursor: str | None = None) -> GroupPage:
    """One page of the groups a user is a direct member of, with how many there are in all: the OData cast
    `memberOf/microsoft.graph.group` leaves directory roles out, so the count is the count of groups."""
    key = user_path_key(user_id)
    path = f"/users/{key}/memberOf/microsoft.graph.group"
    params: dict[str, str | int] = {"$select": GROUP_FIELDS, "$top": checked_page_size(page_size), "$count": "true"}
    try:
        page = access.client.get_page(checked_cursor(access, cursor, path), params=params, advanced=True)
    except NotFound as exc:
        raise _user_missing(user_id, exc) from exc
    return GroupPage([Group.from_graph(g) for g in page.items], page.next_link, page.request_id, page.count)
