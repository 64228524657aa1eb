"""The ten Office 365 operations of the product (and the two bulk ones), in one place.

Each is registered in `OPERATIONS` (`BULK_OPERATIONS`) with its seed label, kind (read/write) and the delegated
scopes that allow it (any one suffices). Writes are refused before anything is sent when the datasource is
read-only or its grant lacks the scope (`WriteNotAllowed`). Results are dataclasses carrying Graph's `request-id`
for the audit. Import the registry from here: importing this module is what registers every operation.
"""

from __future__ import annotations

from office365.bulk import BulkResult, ItemResult, add_users_to_group, assign_licence_to_group_members
from office365.groups import (
    CreatedGroup,
    Group,
    GroupPage,
    GroupType,
    Member,
    MemberPage,
    MembershipResult,
    NewGroup,
    add_user_to_group,
    create_group,
    find_groups,
    find_member,
    get_group,
    iter_group_members,
    list_group_members,
    list_groups,
    remove_user_from_group,
    suggest_mail_nickname,
    user_group_page,
    user_groups,
    validate_mail_nickname,
)
from office365.licences import (
    LicenceChange,
    LicencePlan,
    LicencePlans,
    ServicePlan,
    UserLicence,
    assign_licence,
    friendly_name,
    list_licence_plans,
    remove_licence,
    user_licences,
)
from office365.registry import (
    BULK_OPERATIONS,
    ENABLE_WRITES_HINT,
    OPERATIONS,
    FindMode,
    GraphAccess,
    Operation,
    check_write_allowed,
)
from office365.users import (
    ResolvedUser,
    User,
    UserPage,
    find_users,
    get_user,
    iter_users,
    list_users,
    resolve_users,
)

__all__ = [
    "BULK_OPERATIONS", "ENABLE_WRITES_HINT", "OPERATIONS", "BulkResult", "CreatedGroup", "FindMode", "GraphAccess",
    "Group", "GroupPage", "GroupType", "ItemResult", "LicenceChange", "LicencePlan", "LicencePlans",
    "MembershipResult", "NewGroup", "Operation", "ServicePlan", "User", "UserPage", "add_user_to_group",
    "add_users_to_group", "assign_licence", "assign_licence_to_group_members", "check_write_allowed",
    "create_group", "find_groups", "find_users", "friendly_name", "iter_group_members", "iter_users",
    "list_group_members", "list_groups", "list_licence_plans", "list_users", "Member", "MemberPage",
    "UserLicence", "get_user", "user_licences", "remove_licence", "remove_user_from_group",
    "suggest_mail_nickname", "validate_mail_nickname", "get_group", "user_groups", "user_group_page", "find_member",
    "ResolvedUser", "resolve_users",
]
