"""The ten Office 365 operations of the product, as plain functions over a `GraphClient`.

Each is registered in `OPERATIONS` with its seed label, kind (read/write) and the delegated scopes that allow
it (any one suffices). Writes are refused before anything is sent when the datasource is read-only or its grant
lacks the scope (`WriteNotAllowed`). Results are dataclasses carrying Graph's `request-id` for the audit.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import quote, urlsplit

from office365 import odata
from office365.errors import (
    INVALID_USAGE_LOCATION_MESSAGE,
    NICKNAME_TAKEN_FRAGMENT,
    NO_LICENCES_FRAGMENT,
    AlreadyMember,
    FieldError,
    InvalidRequest,
    MailNicknameTaken,
    NoSeatsLeft,
    NotAMember,
    NotFound,
    Office365Error,
    UsageLocationRequired,
    WriteNotAllowed,
)
from office365.graph import BatchRequest, GraphClient
from office365.licences import friendly_name

P = ParamSpec("P")
R = TypeVar("R")

Kind = Literal["read", "write"]

# -- registry and access -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphAccess:
    """What an operation runs with: the datasource's client and whether it may write."""

    client: GraphClient
    can_write: bool = False

    @property
    def granted_scopes(self) -> frozenset[str]:
        return frozenset(self.client.tokens.granted_scopes)


@dataclass(frozen=True)
class Operation:
    name: str
    label: str
    kind: Kind
    scopes: tuple[str, ...]  # any one of these delegated scopes allows the operation
    func: Callable[..., Any]


OPERATIONS: dict[str, Operation] = {}
BULK_OPERATIONS: dict[str, Operation] = {}

ENABLE_WRITES_HINT = (
    'To enable it, tick "Read and write users & groups" on the datasource and Re-Authorize it, '
    "so that an administrator grants the permission."
)


def _short_scope(scope: str) -> str:
    return scope.rsplit("/", 1)[-1].lower()


def check_write_allowed(access: GraphAccess, op: Operation) -> None:
    """Raise `WriteNotAllowed` unless the datasource may write and its grant holds one of `op.scopes`."""
    if not access.can_write:
        raise WriteNotAllowed(
            f'"{op.label}" changes the tenant, but this datasource is read-only; nothing was sent. '
            + ENABLE_WRITES_HINT
        )
    granted = {_short_scope(s) for s in access.granted_scopes}
    if not any(s.lower() in granted for s in op.scopes):
        raise WriteNotAllowed(
            f'"{op.label}" needs the Graph permission {" or ".join(op.scopes)}, which the datasource\'s grant '
            "lacks; nothing was sent. " + ENABLE_WRITES_HINT
        )


def operation(
    name: str, label: str, kind: Kind, scopes: tuple[str, ...], *, registry: dict[str, Operation] | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register an operation; for writes, check permission before the function runs."""

    def wrap(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            if kind == "write":
                access = args[0] if args else kwargs["access"]
                assert isinstance(access, GraphAccess)
                check_write_allowed(access, op)
            return func(*args, **kwargs)

        op = Operation(name, label, kind, scopes, run)
        (OPERATIONS if registry is None else registry)[name] = op
        run.operation = op  # type: ignore[attr-defined]
        return run

    return wrap


# -- inputs checked before sending ---------------------------------------------------------------------------

_UPN = re.compile(r"^[^\s/\\?#%]+@[^\s/\\?#%@]+$")


def _object_id(value: str, what: str) -> str:
    if not odata.is_guid(value):
        raise FieldError(what, f"{value!r} is not a valid {what.replace('_', ' ')} (a directory object id).")
    return value.lower()


def _user_key(value: str) -> str:
    """A user id or UPN, safe as one URL path segment (guest UPNs hold `#`)."""
    if odata.is_guid(value):
        return value.lower()
    if isinstance(value, str) and _UPN.match(value):
        return quote(value, safe="@")
    raise FieldError("user_id", f"{value!r} is neither a user object id nor a user principal name.")


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


def _cursor(access: GraphAccess, cursor: str | None, path: str) -> str:
    """The URL to fetch: a previous page's cursor (checked to point at our Graph) or the collection path."""
    if cursor is None:
        return path
    if not (isinstance(cursor, str) and access.client.owns(cursor) and urlsplit(cursor).path.endswith(path)):
        raise FieldError("cursor", "This page link is not valid here; start again from the first page.")
    return cursor


def _page_size(page_size: int) -> int:
    if not 1 <= page_size <= 999:
        raise FieldError("page_size", "Page size must be between 1 and 999.")
    return page_size


@operation("list_users", "User List", "read", ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All"))
def list_users(access: GraphAccess, *, page_size: int = 100, cursor: str | None = None) -> UserPage:
    """One page of users (server-side paging); `cursor` is the previous page's `next_cursor`."""
    params = {"$select": USER_FIELDS, "$top": _page_size(page_size)}
    page = access.client.get_page(_cursor(access, cursor, "/users"), params=params)
    return UserPage([User.from_graph(u) for u in page.items], page.next_link, page.request_id)


def iter_users(access: GraphAccess, *, select: str = USER_FIELDS, page_size: int = 999) -> Iterator[User]:
    """Every user of the tenant, page by page: memory stays flat however large the tenant."""
    for item in access.client.iter_items("/users", params={"$select": select, "$top": _page_size(page_size)}):
        yield User.from_graph(item)


FindMode = Literal["prefix", "search"]


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
    query = _query_text(query)
    params: dict[str, str | int] = {"$select": USER_FIELDS, "$top": _page_size(page_size)}
    props = ("displayName", "mail", "userPrincipalName")
    if mode == "search":
        params["$search"] = odata.search_any(props, query)
        params["$count"] = "true"
    elif mode == "prefix":
        params["$filter"] = odata.any_of(*(odata.startswith(p, query) for p in props))
    else:
        raise FieldError("mode", "Search mode must be 'prefix' or 'search'.")
    page = access.client.get_page(_cursor(access, cursor, "/users"), params=params, advanced=mode == "search")
    return UserPage([User.from_graph(u) for u in page.items], page.next_link, page.request_id, page.count)


def _query_text(query: str) -> str:
    query = (query or "").strip()
    if not query:
        raise FieldError("query", "Type at least one character to search for.")
    if len(query) > 256:
        raise FieldError("query", "The search text is too long (256 characters at most).")
    return query


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


GROUP_READ_SCOPES = ("Group.Read.All", "GroupMember.Read.All", "Group.ReadWrite.All", "Directory.Read.All")


@operation("list_groups", "Group List", "read", GROUP_READ_SCOPES)
def list_groups(
    access: GraphAccess, *, page_size: int = 100, cursor: str | None = None, with_member_count: bool = True
) -> GroupPage:
    """One page of groups with their type and (one extra `$batch` per 20 groups) their member count."""
    params = {"$select": GROUP_FIELDS, "$top": _page_size(page_size)}
    page = access.client.get_page(_cursor(access, cursor, "/groups"), params=params)
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
    query = _query_text(query)
    params: dict[str, str | int] = {"$select": GROUP_FIELDS, "$top": _page_size(page_size)}
    if mode == "search":
        params["$search"] = odata.search_any(("displayName", "description"), query)
        params["$count"] = "true"
    elif mode == "prefix":
        params["$filter"] = odata.any_of(
            *(odata.startswith(p, query) for p in ("displayName", "mail", "mailNickname"))
        )
    else:
        raise FieldError("mode", "Search mode must be 'prefix' or 'search'.")
    page = access.client.get_page(_cursor(access, cursor, "/groups"), params=params, advanced=mode == "search")
    return _group_page(access, page, with_member_count)


def iter_group_members(access: GraphAccess, group_id: str, *, select: str = "id,displayName,userPrincipalName"):
    """Every member of a group (users, groups, devices: see `@odata.type`), page by page."""
    gid = _object_id(group_id, "group_id")
    return access.client.iter_items(f"/groups/{gid}/members", params={"$select": select, "$top": 999})


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
    owners = [_object_id(o, "owner_id") for o in dict.fromkeys(new.owners)]
    if len(owners) > 20:
        raise FieldError("owners", "At most 20 owners can be set when creating a group.")
    members = [_object_id(m, "member_id") for m in dict.fromkeys(new.members)]

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
        from office365.bulk import add_members

        results = add_members(access, group.id, members).items
    return CreatedGroup(group, resp.request_id, results)


# -- membership ----------------------------------------------------------------------------------------------

MEMBER_WRITE_SCOPES = ("GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All")


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
    gid, uid = _object_id(group_id, "group_id"), _object_id(user_id, "user_id")
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
    gid, uid = _object_id(group_id, "group_id"), _object_id(user_id, "user_id")
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


# -- licences ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePlan:
    id: str
    name: str
    provisioning_status: str | None
    applies_to: str | None


@dataclass(frozen=True)
class LicencePlan:
    sku_id: str
    sku_part_number: str
    friendly_name: str
    consumed_units: int
    purchased_units: int  # prepaidUnits.enabled
    capability_status: str
    service_plans: tuple[ServicePlan, ...]

    @property
    def available_units(self) -> int:
        return max(0, self.purchased_units - self.consumed_units)

    @classmethod
    def from_graph(cls, d: dict[str, Any]) -> LicencePlan:
        part = d.get("skuPartNumber") or d.get("skuId", "")
        return cls(
            sku_id=d["skuId"],
            sku_part_number=part,
            friendly_name=friendly_name(part),
            consumed_units=int(d.get("consumedUnits") or 0),
            purchased_units=int((d.get("prepaidUnits") or {}).get("enabled") or 0),
            capability_status=d.get("capabilityStatus") or "Enabled",
            service_plans=tuple(
                ServicePlan(p["servicePlanId"], p.get("servicePlanName", ""), p.get("provisioningStatus"),
                            p.get("appliesTo"))
                for p in d.get("servicePlans") or []
            ),
        )


@dataclass(frozen=True)
class LicencePlans:
    plans: list[LicencePlan]
    request_id: str | None


SKU_READ_SCOPES = ("Organization.Read.All", "Directory.Read.All", "Organization.ReadWrite.All")
USER_WRITE_SCOPES = ("User.ReadWrite.All", "Directory.ReadWrite.All")
LICENCE_WRITE_SCOPES = ("LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All")


@operation("list_licence_plans", "Licence Plan List", "read", SKU_READ_SCOPES)
def list_licence_plans(access: GraphAccess) -> LicencePlans:
    resp = access.client.get("/subscribedSkus")
    items = resp.body.get("value", []) if isinstance(resp.body, dict) else []
    return LicencePlans([LicencePlan.from_graph(s) for s in items], resp.request_id)


def _find_plan(access: GraphAccess, sku_id: str) -> LicencePlan:
    for plan in list_licence_plans(access).plans:
        if plan.sku_id.lower() == sku_id.lower():
            return plan
    raise NotFound(
        f"The licence plan {sku_id} is not subscribed in this tenant. Pick a plan from the Licence Plan List.",
        status=404, request_id=access.client.last_request_id,
    )


@dataclass(frozen=True)
class LicenceChange:
    user_id: str
    sku_id: str
    outcome: Literal["assigned", "updated", "removed"]
    message: str
    request_id: str | None
    usage_location_set: str | None = None


_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _get_user(access: GraphAccess, user_key: str, select: str) -> dict[str, Any]:
    try:
        return access.client.get(f"/users/{user_key}", params={"$select": select}).body
    except NotFound as exc:
        raise NotFound(
            f"The user {user_key} does not exist in the tenant. Check the id; it may have been deleted.",
            status=404, code=exc.code, graph_message=exc.graph_message, request_id=exc.request_id,
        ) from exc


def _licence_error(exc: InvalidRequest, sku_id: str) -> Office365Error:
    message = exc.graph_message or ""
    if message == INVALID_USAGE_LOCATION_MESSAGE:
        return UsageLocationRequired(
            "Graph refused the licence because the user has no valid usage location. Set the user's usage "
            "location (a two-letter country code) and try again.", request_id=exc.request_id,
        )
    if NO_LICENCES_FRAGMENT in message:
        return NoSeatsLeft(
            f"No seats are left for licence plan {sku_id}. Buy more licences or remove the plan from someone "
            "who does not need it, then try again.", request_id=exc.request_id,
        )
    return exc


@operation("assign_licence", "Assign Licence to User", "write", LICENCE_WRITE_SCOPES)
def assign_licence(
    access: GraphAccess,
    user_id: str,
    sku_id: str,
    *,
    disabled_plans: Sequence[str] = (),
    set_usage_location: str | None = None,
) -> LicenceChange:
    """Assign (or update the disabled plans of) a licence, after checking usage location and free seats.

    `set_usage_location` (ISO 3166 alpha-2, e.g. "FR"): set it first when the user has none.
    """
    key = _user_key(user_id)
    sku = _object_id(sku_id, "sku_id")
    disabled = [_object_id(p, "disabled_plan") for p in dict.fromkeys(disabled_plans)]
    if set_usage_location is not None:
        set_usage_location = set_usage_location.strip().upper()
        if not _COUNTRY.match(set_usage_location):
            raise FieldError("usage_location", "The usage location must be a two-letter country code, e.g. FR.")
        granted = {_short_scope(s) for s in access.granted_scopes}
        if not granted & {s.lower() for s in USER_WRITE_SCOPES}:
            raise WriteNotAllowed(
                "Setting a user's usage location needs the Graph permission User.ReadWrite.All, which the "
                "datasource's grant lacks; nothing was sent. Set the usage location in the Microsoft 365 admin "
                "center, or add User.ReadWrite.All to the datasource's permissions and Re-Authorize it."
            )
    user = _get_user(access, key, "id,userPrincipalName,usageLocation,assignedLicenses")
    plan = _find_plan(access, sku)
    unknown = set(disabled) - {p.id.lower() for p in plan.service_plans}
    if unknown:
        raise FieldError(
            "disabled_plans",
            f"{', '.join(sorted(unknown))} are not service plans of {plan.friendly_name}. Pick plans from the list.",
        )
    has_it = any(a.get("skuId", "").lower() == sku for a in user.get("assignedLicenses") or [])
    if not has_it and plan.available_units <= 0:
        raise NoSeatsLeft(
            f"No seats are left for {plan.friendly_name} ({plan.consumed_units} of {plan.purchased_units} used). "
            "Buy more licences or remove the plan from someone who does not need it, then try again.",
            request_id=access.client.last_request_id,
        )
    location_set = None
    if not user.get("usageLocation"):
        if not set_usage_location:
            raise UsageLocationRequired(
                f"The user {user.get('userPrincipalName') or user_id} has no usage location, which Microsoft "
                "requires before a licence can be assigned. Set one (a two-letter country code) and try again.",
                request_id=access.client.last_request_id,
            )
        access.client.request(
            "PATCH", f"/users/{user['id']}", json_body={"usageLocation": set_usage_location}, idempotent=True
        )
        location_set = set_usage_location
    body = {"addLicenses": [{"skuId": sku, "disabledPlans": disabled}], "removeLicenses": []}
    for attempt in range(3):
        try:
            resp = access.client.request(
                "POST", f"/users/{user['id']}/assignLicense", json_body=body, idempotent=True
            )
            break
        except InvalidRequest as exc:
            error = _licence_error(exc, sku)
            # A usage location just set can take a moment to replicate: retry briefly (reference §8.12).
            if location_set and isinstance(error, UsageLocationRequired) and attempt < 2:
                access.client.sleep(access.client.retry.backoff(attempt + 1))
                continue
            raise error from exc
    outcome: Literal["assigned", "updated"] = "updated" if has_it else "assigned"
    return LicenceChange(
        user["id"], sku, outcome,
        f"{plan.friendly_name} was {'updated for' if has_it else 'assigned to'} the user.",
        resp.request_id, location_set,
    )


@operation("remove_licence", "Remove Licence from User", "write", LICENCE_WRITE_SCOPES)
def remove_licence(access: GraphAccess, user_id: str, sku_id: str) -> LicenceChange:
    """Remove a directly assigned licence; refuses (without sending) when the user does not hold it."""
    key = _user_key(user_id)
    sku = _object_id(sku_id, "sku_id")
    user = _get_user(access, key, "id,userPrincipalName,assignedLicenses")
    if not any(a.get("skuId", "").lower() == sku for a in user.get("assignedLicenses") or []):
        raise InvalidRequest(
            f"The user {user.get('userPrincipalName') or user_id} does not hold licence plan {sku}; nothing was "
            "changed. Refresh the user's licences.",
            status=400, request_id=access.client.last_request_id,
        )
    body = {"addLicenses": [], "removeLicenses": [sku]}
    try:
        resp = access.client.request("POST", f"/users/{user['id']}/assignLicense", json_body=body)
    except InvalidRequest as exc:
        raise _licence_error(exc, sku) from exc
    return LicenceChange(user["id"], sku, "removed", "The licence was removed from the user.", resp.request_id)
