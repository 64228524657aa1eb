"""Every /api/v1/ input and output, defined once as Pydantic models.

flask-openapi3 validates each request against these models and builds the OpenAPI document from them
(api/openapi.py), so what the API accepts and what its document says cannot drift apart. Responses are
serialized through their models too (`api.views._answer`), so the answers match the documented shapes.

Request bodies are strict (a JSON string is not a number, an object is not a list) and refuse unknown fields;
query strings are parsed leniently (`page_size=10` is the number 10), as everything in a URL is text.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, ClassVar, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from core import errors as core_errors
from office365 import errors as o365_errors
from office365 import operations as ops
from office365.groups import GroupType

# -- reusable field types ----------------------------------------------------------------------------------

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
GUID_PATTERN = f"^{_GUID}$"
# An object id, or a user principal name as the operations accept it (office365.registry._UPN).
USER_KEY_PATTERN = f"^(?:{_GUID}|" + r"[^\s/\\?#%]+@[^\s/\\?#%@]+)$"
MAX_ID = 2**31 - 1  # datasource ids are 32-bit integers in every database we support

ObjectId = Annotated[str, Field(pattern=GUID_PATTERN, json_schema_extra={"format": "uuid"},
                                description="A directory object id (GUID).")]
UserKey = Annotated[str, Field(pattern=USER_KEY_PATTERN, max_length=1024,
                               description="A user's object id (GUID) or user principal name.")]
SkuId = Annotated[str, Field(pattern=GUID_PATTERN, json_schema_extra={"format": "uuid"},
                             description="A licence plan's skuId (GUID).")]


class ApiModel(BaseModel):
    """Base of the API's models; the registry lets a validation error name a field's documented bounds."""

    registry: ClassVar[dict[str, type[ApiModel]]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        ApiModel.registry[cls.__name__] = cls


class Body(ApiModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class Out(ApiModel):
    """A response: read from the operation's result dataclass (attributes) or from a dict."""

    model_config = ConfigDict(from_attributes=True)


# -- path and query parameters -----------------------------------------------------------------------------


class DatasourcePath(ApiModel):
    datasource_id: int = Field(ge=1, le=MAX_ID, description="The datasource's id (see GET /datasources).")


class UserPath(DatasourcePath):
    user_id: UserKey


class GroupPath(DatasourcePath):
    group_id: ObjectId


class MemberPath(GroupPath):
    user_id: ObjectId


class UserLicencePath(UserPath):
    sku_id: SkuId


class Paging(ApiModel):
    # A query parameter is never null: SkipJsonSchema keeps `None` (left out) out of the document.
    page_size: Annotated[int, Field(ge=1, le=999)] | SkipJsonSchema[None] = Field(
        None, description="Items per page (Graph's $top).")
    cursor: Annotated[str, Field(max_length=4096)] | SkipJsonSchema[None] = Field(None,
                               description="`next_cursor` of the previous page (Graph's @odata.nextLink).")


class ListParams(Paging):
    """Search, filters and sort of a list, as the list pages take them (office365/listing.py)."""

    cursor: Annotated[str, Field(max_length=8192)] | SkipJsonSchema[None] = Field(
        None, description="`next_cursor` or `previous_cursor` of a page of the same list: opaque and signed.")
    q: Annotated[str, Field(max_length=256)] | SkipJsonSchema[None] = Field(
        None, description="Prefix of a name, mail or UPN (groups: name, mail or mail nickname).")
    filter: list[Annotated[str, Field(max_length=80)]] = Field(
        default_factory=list, max_length=8,
        description="Repeatable. Users and members: `enabled`, `disabled`, `licensed`, `unlicensed`, "
                    "`department:<name>`. Groups: `type:microsoft365`, `type:security`, `type:mail_enabled_security`, "
                    "`type:distribution`.")
    sort: Annotated[str, Field(max_length=40)] | SkipJsonSchema[None] = Field(
        None, description="Users: `displayName`, `userPrincipalName`, `createdDateTime`; groups and members: "
                          "`displayName`. A leading `-` sorts descending. Left out: Graph's own order.")


class GroupPaging(ListParams):
    member_count: bool = Field(True, description="`false` skips counting members (one $batch per 20 groups).")


class FindQuery(Paging):
    q: str = Field(min_length=1, max_length=256, description="Text to look for.")
    mode: Literal["prefix", "search"] = Field(
        "prefix", description="`prefix`: startswith on name, mail and UPN; `search`: Graph $search tokens.")


class FindGroupsQuery(FindQuery):
    member_count: bool = Field(True, description="`false` skips counting members (one $batch per 20 groups).")


# -- request bodies ----------------------------------------------------------------------------------------

NOT_CREATABLE = {GroupType.MAIL_ENABLED_SECURITY.value, GroupType.DISTRIBUTION.value}


class NewGroupBody(Body):
    display_name: str = Field(min_length=1, max_length=256)
    description: str | None = Field(None, max_length=1024)
    mail_nickname: str | None = Field(
        None, description="1-64 ASCII characters without spaces or @()\\[]\";:.<>, (derived from the display "
                          "name when left out). A taken one answers 409 `mail_nickname_taken` with a `suggestion`.")
    group_type: Literal["security", "microsoft365"] = "security"
    owners: list[ObjectId] = Field(default_factory=list, max_length=20, description="User object ids.")
    members: list[ObjectId] = Field(default_factory=list, max_length=1000, description="User object ids.")

    @field_validator("group_type", mode="before")
    @classmethod
    def _only_creatable_types(cls, value: Any) -> Any:
        if isinstance(value, str) and value in NOT_CREATABLE:
            raise PydanticCustomError(
                "not_creatable", "Graph can only create security and Microsoft 365 groups; create mail-enabled "
                "security groups and distribution lists in the Exchange admin center.")
        return value


class AddMemberBody(Body):
    user_id: ObjectId


class AssignLicenceBody(Body):
    sku_id: SkuId
    disabled_plans: list[ObjectId] = Field(default_factory=list, max_length=100,
                                           description="Service plan ids to switch off.")
    usage_location: str | None = Field(None, pattern=r"^[A-Za-z]{2}$",
                                       description="Two-letter country code to set first when the user has none.")


class BulkMembersBody(Body):
    group_id: ObjectId
    user_ids: list[str] = Field(min_length=1, max_length=5000,
                                description="User object ids (or user principal names); any other value is counted "
                                            "as `invalid` in the job's `unchanged`, the others still run.")


class BulkLicencesBody(Body):
    group_id: ObjectId
    sku_id: SkuId
    disabled_plans: list[ObjectId] = Field(default_factory=list, max_length=100)
    dry_run: bool = Field(False, description="Preview only: the job is created but not queued, nothing is written.")


# -- responses ---------------------------------------------------------------------------------------------


class DatasourceOut(Out):
    id: int
    name: str
    status: str = Field(description='"ready", "incomplete" (not authorized yet) or "needs re-authorization".')
    read_write: bool
    tenant_name: str | None


class DatasourceList(Out):
    datasources: list[DatasourceOut]


def result_model(source: type, **more: Any) -> type[Out]:
    """The response model of an operation's result dataclass: its fields (nested dataclasses included), plus
    `more` for what the answer adds (computed properties such as `available_units`)."""
    hints = get_type_hints(source)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(source):
        default = f.default if f.default is not dataclasses.MISSING else (
            Field(default_factory=f.default_factory) if f.default_factory is not dataclasses.MISSING else ...)
        fields[f.name] = (hints[f.name], default)
    fields.update(more)
    doc = source.__doc__ if source.__doc__ and not source.__doc__.startswith(f"{source.__name__}(") else None
    return create_model(source.__name__, __base__=Out, __doc__=doc, **fields)


LIST_PAGE_FIELDS: dict[str, Any] = {
    "next_cursor": (str | None, Field(None, description="Pass as `cursor` for the next page (opaque, signed).")),
    "previous_cursor": (str | None, Field(None, description='The previous page\'s `cursor` ("" = the first page; '
                                                             "null when there is none to go back to).")),
    "page": (int, Field(1, description="This page's number, 1 for the first.")),
    "total": (int | None, Field(None, description="How many items the whole list holds (Graph's count).")),
}
UserPage = result_model(ops.UserPage, **LIST_PAGE_FIELDS)
GroupPage = result_model(ops.GroupPage, **LIST_PAGE_FIELDS)
MemberPage = result_model(ops.MemberPage, **LIST_PAGE_FIELDS)
ItemResult = result_model(ops.ItemResult)
CreatedGroup = result_model(ops.CreatedGroup, member_results=(list[ItemResult], ...))
MembershipResult = result_model(ops.MembershipResult)
LicencePlan = result_model(ops.LicencePlan, available_units=(int, ...))
LicenceChange = result_model(ops.LicenceChange)


class UserDetail(Out):
    user: ops.User
    licences: list[ops.UserLicence]
    groups: list[ops.Group] = Field(description="The first page of the user's groups (see `groups_total`).")
    groups_total: int | None = Field(None, description="How many groups the user is a direct member of.")
    groups_next_cursor: str | None = Field(
        None, description="When there are more: pass as `cursor` to GET /users/{user_id}/groups for the rest.")


class GroupDetail(Out):
    group: ops.Group
    members: MemberPage  # type: ignore[valid-type]


class MemberCheck(Out):
    """Whether a user is a direct member of the group (one Graph request)."""

    member: bool
    user: ops.Member | None = None


class MemberCheckPath(GroupPath):
    user_id: UserKey


class LicencePlans(Out):
    plans: list[LicencePlan]  # type: ignore[valid-type]
    request_id: str | None


# -- errors ------------------------------------------------------------------------------------------------

API_ERROR_CODES = (
    "unauthenticated", "invalid_api_key", "api_key_revoked", "api_key_expired", "user_inactive", "csrf_failed",
    "forbidden", "datasource_not_found", "datasource_not_ready", "invalid_field",
    "job_not_found", "job_not_queueable", "preview_deadline",  # bulk jobs (api/bulk_jobs.py)
)


def _office365_codes() -> list[str]:
    found, todo = [], [o365_errors.Office365Error]
    while todo:
        cls = todo.pop(0)
        found.append(cls.error_code)
        todo.extend(cls.__subclasses__())
    return found


# Codes of the API itself, of every Office 365 error, and of the app-wide HTTP errors (404 for an unknown
# address, 405, 413, 429, 500 ...) and malformed-input errors (422 invalid_text ...) that core.errors answers for
# /api/ paths.
ERROR_CODES: tuple[str, ...] = tuple(dict.fromkeys(
    [*API_ERROR_CODES, *_office365_codes(), *core_errors.CODES.values(), *core_errors.INPUT_CODES, "error"]))


class ErrorDetail(ApiModel):
    code: Literal[ERROR_CODES]  # type: ignore[valid-type]
    message: str
    field: str | None = Field(None, description="The input field at fault (invalid_field, mail_nickname_taken).")
    suggestion: str | None = Field(None, description="A valid value to use instead, when there is one.")
    request_id: str | None = Field(None, description="Graph's request-id, when Microsoft answered.")
    reference: str | None = Field(None, description="The log reference of an unexpected error (500).")


class Error(ApiModel):
    """Every error: a stable `code` to branch on and a `message` to show."""

    error: ErrorDetail
