"""The /api/v1/ routes: datasources and the ten Office 365 operations (the bulk ones are jobs: api/bulk_jobs.py).

Each route names its path, query and body models (api/schemas.py) in its signature: flask-openapi3 validates the
request against them before the view runs (422 `invalid_field` otherwise) and documents them. Answers go
through their response model (`_answer`), which is the schema the document shows for them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Response, g, jsonify, request
from flask_openapi3 import Tag
from pydantic import BaseModel

from api import bp
from api import schemas as s
from api.auth import SAFE_METHODS, AuthError, authenticate
from api.errors import error_json, office365_error
from core import audit
from core.extensions import db
from core.models import Datasource
from datasources import cursors
from datasources.service import (
    Caller,
    DatasourceUnavailable,
    datasource_for,
    page_deadline,
    refuse,
    run,
    usable_datasources,
)
from office365 import operations as ops
from office365.errors import Office365Error
from office365.listing import checked_list_query

PUBLIC_ENDPOINTS = {"api.openapi_json", "api.openapi_page"}
DATASOURCES, USERS, GROUPS = Tag(name="Datasources"), Tag(name="Users"), Tag(name="Groups")
LICENCES, BULK = Tag(name="Licences"), Tag(name="Bulk")
DS = "/datasources/<id:datasource_id>"


def _doc(label: str | None, kind: str) -> dict[str, str]:
    """The document's extensions for an operation: its seed label and whether it reads or writes."""
    return {"x-operation-kind": kind, **({"x-seed-label": label} if label else {})}


@bp.before_request
def _authenticate() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    g.caller = authenticate()


@bp.errorhandler(AuthError)
def _auth_error(exc: AuthError) -> tuple[Response, int]:
    if exc.key is not None and request.method not in SAFE_METHODS:
        # A write attempted with a known key that may no longer be used: a refused write, for the audit trail.
        audit.record("api.refused", f"{request.method} {request.path}"[:512], outcome="refused",
                     actor=Caller(exc.key.user, exc.key).actor, error_code=exc.code, message=exc.message)
        db.session.commit()
    response, status = error_json(exc.status, exc.code, exc.message)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response, status


@bp.errorhandler(DatasourceUnavailable)
def _unavailable(exc: DatasourceUnavailable) -> tuple[Response, int]:
    return error_json(exc.status, exc.code, exc.message)


@bp.errorhandler(Office365Error)
def _office365_error(exc: Office365Error) -> tuple[Response, int]:
    return office365_error(exc)


# -- helpers ---------------------------------------------------------------------------------------------------


def _datasource(datasource_id: int, name: str, target: str = "", summary: dict[str, Any] | None = None) -> Datasource:
    """The datasource for this caller; a refused write is audited before it is refused."""
    try:
        return datasource_for(g.caller.user, datasource_id)
    except DatasourceUnavailable as exc:
        refuse(None if exc.status == 404 else db.session.get(Datasource, datasource_id), g.caller, name, target,
               summary or {}, exc.message, exc.code)
        raise


def _answer(model: type[BaseModel], value: Any, status: int = 200) -> tuple[Response, int]:
    """The result as its documented response model."""
    return jsonify(model.model_validate(value).model_dump(mode="json")), status


def _list(ds: Datasource, operation: str, kind: str, query: s.ListParams, fetch: Any, **scope: Any) -> dict[str, Any]:
    """One page of a list: the query checked as the list pages check it, the cursor verified (signed, made for
    this very list), Graph read within the page deadline, and the answer with signed next/previous cursors."""
    wanted = checked_list_query(kind, q=query.q or "", filters=query.filter, sort=query.sort or "",
                                page_size=query.page_size if query.page_size is not None else 100)
    fingerprint = cursors.fingerprint(kind=kind, q=wanted.q, filters=wanted.filters, sort=wanted.sort,
                                      size=wanted.page_size, **scope)
    position = cursors.decode(query.cursor, fingerprint)
    result = run(ds, g.caller, operation, "", {}, lambda a: fetch(a, wanted, position.link),
                 deadline=page_deadline())
    pager = cursors.pager(position, result.next_cursor, result.count, fingerprint)
    return {**{f.name: getattr(result, f.name) for f in dataclasses.fields(result)}, **pager.as_dict()}


def _paging(query: s.Paging) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"cursor": query.cursor or None}
    if query.page_size is not None:
        kwargs["page_size"] = query.page_size
    return kwargs


# -- datasources -----------------------------------------------------------------------------------------------


@bp.get("/datasources", summary="Datasources you may use", tags=[DATASOURCES], responses={200: s.DatasourceList})
def datasources() -> tuple[Response, int]:
    return _answer(s.DatasourceList, {"datasources": usable_datasources(g.caller.user)})


# -- users -----------------------------------------------------------------------------------------------------


@bp.get(f"{DS}/users", summary="One page of users, searched, filtered and sorted, with the total",
        tags=[USERS], responses={200: s.UserPage}, openapi_extensions=_doc("User List", "read"))
def list_users(path: s.DatasourcePath, query: s.ListParams) -> tuple[Response, int]:
    ds = _datasource(path.datasource_id, "list_users")
    return _answer(s.UserPage, _list(ds, "list_users", "users", query,
                                     lambda a, q, link: ops.list_users(a, query=q, cursor=link)))


@bp.get(f"{DS}/users/find", summary="Find users by name, mail or UPN", tags=[USERS], responses={200: s.UserPage},
        openapi_extensions=_doc("Find Users", "read"))
def find_users(path: s.DatasourcePath, query: s.FindQuery) -> tuple[Response, int]:
    ds = _datasource(path.datasource_id, "find_users")
    kwargs = _paging(query)
    return _answer(s.UserPage, run(ds, g.caller, "find_users", "", {},
                                   lambda a: ops.find_users(a, query.q, mode=query.mode, **kwargs)))


@bp.get(f"{DS}/users/<user_id>", summary="A user with their licences and groups", tags=[USERS],
        responses={200: s.UserDetail}, openapi_extensions=_doc(None, "read"))
def get_user(path: s.UserPath) -> tuple[Response, int]:
    ds = _datasource(path.datasource_id, "list_users")
    user_id = path.user_id
    fingerprint = cursors.fingerprint(kind="user_groups", user=user_id.lower(), size=100)

    def call(a: ops.GraphAccess) -> dict[str, Any]:
        groups = ops.user_group_page(a, user_id, page_size=100)
        more = cursors.pager(cursors.Position(), groups.next_cursor, groups.count, fingerprint).next_cursor
        return {"user": ops.get_user(a, user_id), "licences": ops.user_licences(a, user_id),
                "groups": groups.groups, "groups_total": groups.count, "groups_next_cursor": more}

    return _answer(s.UserDetail, run(ds, g.caller, "list_users", "", {}, call, deadline=page_deadline()))


@bp.get(f"{DS}/users/<user_id>/groups", summary="The groups a user is a direct member of, paged, with the total",
        tags=[USERS], responses={200: s.GroupPage}, openapi_extensions=_doc(None, "read"))
def user_groups(path: s.UserPath, query: s.Paging) -> tuple[Response, int]:
    ds = _datasource(path.datasource_id, "list_users")
    user_id, size = path.user_id, query.page_size if query.page_size is not None else 100
    fingerprint = cursors.fingerprint(kind="user_groups", user=user_id.lower(), size=size)
    position = cursors.decode(query.cursor, fingerprint)
    result = run(ds, g.caller, "list_users", "", {},
                 lambda a: ops.user_group_page(a, user_id, page_size=size, cursor=position.link),
                 deadline=page_deadline())
    pager = cursors.pager(position, result.next_cursor, result.count, fingerprint)
    return _answer(s.GroupPage, {"groups": result.groups, "request_id": result.request_id, "count": result.count,
                                 **pager.as_dict()})


# -- groups ----------------------------------------------------------------------------------------------------


@bp.get(f"{DS}/groups", summary="One page of groups with type, member count and the total", tags=[GROUPS],
        responses={200: s.GroupPage}, openapi_extensions=_doc("Group List", "read"))
def list_groups(path: s.DatasourcePath, query: s.GroupPaging) -> tuple[Response, int]:
    ds = _datasource(path.datasource_id, "list_groups")
    return _answer(s.GroupPage, _list(ds, "list_groups", "groups", query, lambda a, q, link: ops.list_groups(
        a, query=q, cursor=link, with_member_count=query.member_count)))


@bp.get(f"{DS}/groups/find", summary="Find groups by name, mail or nickname", tags=[GROUPS],
        responses={200: s.GroupPage}, openapi_extensions=_doc("Find Groups", "read"))
def find_groups(path: s.DatasourcePath, query: s.FindGroupsQuery) -> tuple[Response, int]:
    ds = _datasource(path.datasource_id, "find_groups")
    kwargs = _paging(query)
    return _answer(s.GroupPage, run(ds, g.caller, "find_groups", "", {}, lambda a: ops.find_groups(
        a, query.q, mode=query.mode, with_member_count=query.member_count, **kwargs)))


@bp.get(f"{DS}/groups/<group_id>", summary="A group and one page of its members, searched and filtered",
        tags=[GROUPS], responses={200: s.GroupDetail}, openapi_extensions=_doc(None, "read"),
        description="With `q`, `filter` or `sort` the members that are users are listed (Graph searches them).")
def get_group(path: s.GroupPath, query: s.ListParams) -> tuple[Response, int]:
    ds = _datasource(path.datasource_id, "list_groups")
    group_id = path.group_id.lower()
    group = run(ds, g.caller, "list_groups", "", {}, lambda a: ops.get_group(a, group_id), deadline=page_deadline())
    members = _list(ds, "list_groups", "members", query,
                    lambda a, q, link: ops.list_group_members(a, group_id, query=q, cursor=link), group=group_id)
    return _answer(s.GroupDetail, {"group": group, "members": members})


@bp.get(f"{DS}/groups/<group_id>/members/<user_id>", summary="Is this user a direct member of the group?",
        tags=[GROUPS], responses={200: s.MemberCheck}, openapi_extensions=_doc(None, "read"),
        description="One Graph request; `member` false (200) when the user is not a member or not in the tenant.")
def check_member(path: s.MemberCheckPath) -> tuple[Response, int]:
    ds = _datasource(path.datasource_id, "list_groups")
    found = run(ds, g.caller, "list_groups", "", {}, lambda a: ops.find_member(a, path.group_id, path.user_id),
                deadline=page_deadline())
    return _answer(s.MemberCheck, {"member": found is not None, "user": found})


@bp.post(f"{DS}/groups", summary="Create a security or Microsoft 365 group", tags=[GROUPS],
         responses={201: s.CreatedGroup}, openapi_extensions=_doc("Create Group", "write"),
         description="A taken mail nickname answers 409 `mail_nickname_taken` with a `suggestion`.")
def create_group(path: s.DatasourcePath, body: s.NewGroupBody) -> tuple[Response, int]:
    summary: dict[str, Any] = {"display_name": body.display_name, "mail_nickname": body.mail_nickname,
                               "group_type": body.group_type}
    ds = _datasource(path.datasource_id, "create_group", body.display_name, summary)
    new = ops.NewGroup(
        display_name=body.display_name.strip(), group_type=ops.GroupType(body.group_type),
        mail_nickname=body.mail_nickname.strip() if body.mail_nickname is not None else None,
        description=body.description.strip() if body.description is not None else None,
        owners=tuple(body.owners), members=tuple(body.members),
    )
    summary.update(owners=len(new.owners), members=len(new.members))
    result = run(ds, g.caller, "create_group", new.display_name, summary, lambda a: ops.create_group(a, new),
                 outcome_of=lambda r: {"group_id": r.group.id, "mail_nickname": r.group.mail_nickname})
    return _answer(s.CreatedGroup, result, 201)


@bp.post(f"{DS}/groups/<group_id>/members", summary="Add a user to the group", tags=[GROUPS],
         responses={200: s.MembershipResult, 201: s.MembershipResult},
         openapi_extensions=_doc("Add User to Group", "write"),
         description="201 `added`; 200 with outcome `already_member` when nothing had to change.")
def add_user_to_group(path: s.GroupPath, body: s.AddMemberBody) -> tuple[Response, int]:
    group_id, user_id = path.group_id, body.user_id
    target, summary = f"group {group_id} / user {user_id}", {"group_id": group_id, "user_id": user_id}
    ds = _datasource(path.datasource_id, "add_user_to_group", target, summary)
    result = run(ds, g.caller, "add_user_to_group", target, summary,
                 lambda a: ops.add_user_to_group(a, group_id, user_id), outcome_of=lambda r: {"result": r.outcome})
    return _answer(s.MembershipResult, result, 201 if result.outcome == "added" else 200)


@bp.delete(f"{DS}/groups/<group_id>/members/<user_id>", summary="Remove a user from the group", tags=[GROUPS],
           responses={200: s.MembershipResult}, openapi_extensions=_doc("Remove User From Group", "write"),
           description="404 `not_a_member` when they are not one.")
def remove_user_from_group(path: s.MemberPath) -> tuple[Response, int]:
    group_id, user_id = path.group_id, path.user_id
    target, summary = f"group {group_id} / user {user_id}", {"group_id": group_id, "user_id": user_id}
    ds = _datasource(path.datasource_id, "remove_user_from_group", target, summary)
    return _answer(s.MembershipResult, run(ds, g.caller, "remove_user_from_group", target, summary,
                                           lambda a: ops.remove_user_from_group(a, group_id, user_id),
                                           outcome_of=lambda r: {"result": r.outcome}))


# -- licences --------------------------------------------------------------------------------------------------


@bp.get(f"{DS}/licences", summary="Licence plans: seats and service plans", tags=[LICENCES],
        responses={200: s.LicencePlans}, openapi_extensions=_doc("Licence Plan List", "read"))
def list_licence_plans(path: s.DatasourcePath) -> tuple[Response, int]:
    ds = _datasource(path.datasource_id, "list_licence_plans")
    return _answer(s.LicencePlans, run(ds, g.caller, "list_licence_plans", "", {}, ops.list_licence_plans))


@bp.post(f"{DS}/users/<user_id>/licences", summary="Assign a licence to a user", tags=[LICENCES],
         responses={200: s.LicenceChange}, openapi_extensions=_doc("Assign Licence to User", "write"),
         description="422 `usage_location_required` when the user has no usage location; 409 `no_seats_left` "
                     "when the plan is full.")
def assign_licence(path: s.UserPath, body: s.AssignLicenceBody) -> tuple[Response, int]:
    user_id, sku_id = path.user_id, body.sku_id
    summary = {"user_id": user_id, "sku_id": sku_id, "disabled_plans": body.disabled_plans,
               "usage_location": body.usage_location}
    target = f"user {user_id} / sku {sku_id}"
    ds = _datasource(path.datasource_id, "assign_licence", target, summary)
    result = run(ds, g.caller, "assign_licence", target, summary,
                 lambda a: ops.assign_licence(a, user_id, sku_id, disabled_plans=body.disabled_plans,
                                              set_usage_location=body.usage_location or None),
                 outcome_of=lambda r: {"result": r.outcome, "usage_location_set": r.usage_location_set})
    return _answer(s.LicenceChange, result)


@bp.delete(f"{DS}/users/<user_id>/licences/<sku_id>", summary="Remove a licence from a user", tags=[LICENCES],
           responses={200: s.LicenceChange}, openapi_extensions=_doc("Remove Licence from User", "write"))
def remove_licence(path: s.UserLicencePath) -> tuple[Response, int]:
    user_id, sku_id = path.user_id, path.sku_id
    target, summary = f"user {user_id} / sku {sku_id}", {"user_id": user_id, "sku_id": sku_id}
    ds = _datasource(path.datasource_id, "remove_licence", target, summary)
    return _answer(s.LicenceChange, run(ds, g.caller, "remove_licence", target, summary,
                                        lambda a: ops.remove_licence(a, user_id, sku_id),
                                        outcome_of=lambda r: {"result": r.outcome}))


# The bulk operations (bulk/group-members, bulk/group-licences) are jobs: api/bulk_jobs.py.
