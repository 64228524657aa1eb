"""/users, /users/{id|UPN} and their relationships and actions; /me is the same user seen from the token."""

from __future__ import annotations

import base64
import json
import uuid

from flask import Response, g, request

from emulator import directory
from emulator.graph import bp, common, listing, odata, relations
from emulator.graph.errors import bad_request


def _resolve(ref: str) -> str:
    """Object id of a user given by id or UPN (404 otherwise)."""
    row = directory.get_user_row(common.db(), common.tenant(), ref)
    if row is None:
        raise directory.not_found(ref)
    return row["id"]


def _resolve_for(ref: str, scopes: frozenset[str]) -> str:
    """Object id of a user the caller may read with `scopes` (or as themselves); 403 before 404."""
    row = directory.get_user_row(common.db(), common.tenant(), ref)
    common.require(scopes, self_id=row["id"] if row is not None else None)
    if row is None:
        raise directory.not_found(ref)
    return row["id"]


def _me() -> str:
    if not common.delegated():
        raise bad_request("/me request is only valid with delegated authentication flow.", code="BadRequest")
    return g.caller_oid


@bp.get("/users")
def list_users() -> Response:
    common.require(common.USER_READ)
    return listing.list_collection(listing.USERS)


@bp.get("/users/$count")
def count_users() -> Response:
    common.require(common.USER_READ)
    return listing.count_collection(listing.USERS)


def _get_user(ref: str) -> Response:
    conn = common.db()
    row = directory.get_user_row(conn, common.tenant(), _resolve_for(ref, common.USER_READ))
    select = odata.parse_select(request.args.get("$select"), odata.USER_SCHEMA)
    obj = common.project(directory.user_json(conn, row), select, listing.USER_DEFAULT)
    context = common.context_url("users" + common.select_suffix(select) + "/$entity")
    return common.odata_json({"@odata.context": context, **obj})


@bp.get("/users/<ref>")
def get_user(ref: str) -> Response:
    return _get_user(ref)


@bp.get("/me")
def get_me() -> Response:
    return _get_user(_me())


@bp.patch("/users/<ref>")
def patch_user(ref: str) -> Response:
    common.require(common.USER_WRITE, write=True)
    body = common.json_body()
    with common.store().transaction() as conn:
        directory.update_user(conn, common.tenant(), _resolve(ref), body)
    return common.no_content()


@bp.delete("/users/<ref>")
def delete_user(ref: str) -> Response:
    common.require(common.USER_WRITE, write=True)
    with common.store().transaction() as conn:
        directory.delete_user(conn, common.tenant(), _resolve(ref))
    return common.no_content()


@bp.post("/users")
def create_user() -> Response:
    common.require(common.USER_WRITE, write=True)
    body = common.json_body()
    with common.store().transaction() as conn:
        obj = directory.create_user(conn, common.tenant(), body)
    context = common.context_url("users/$entity")
    return common.odata_json({"@odata.context": context, **common.project(obj, None, listing.USER_DEFAULT)},
                             status=201)


# ---------------------------------------------------------------------------------------------- memberships

def _member_of(ref: str, transitive: bool) -> Response:
    user_id = _resolve_for(ref, common.MEMBERSHIP_READ)
    return relations.member_of(user_id, transitive)


@bp.get("/users/<ref>/memberOf")
def member_of(ref: str) -> Response:
    return _member_of(ref, False)


@bp.get("/users/<ref>/transitiveMemberOf")
def transitive_member_of(ref: str) -> Response:
    return _member_of(ref, True)


@bp.get("/me/memberOf")
def me_member_of() -> Response:
    return _member_of(_me(), False)


@bp.get("/users/<ref>/memberOf/microsoft.graph.directoryRole")
def member_of_roles(ref: str) -> Response:
    return relations.member_of_roles(_resolve_for(ref, common.MEMBERSHIP_READ))


@bp.get("/users/<ref>/memberOf/microsoft.graph.group")
def member_of_groups(ref: str) -> Response:
    return relations.member_of_groups(_resolve_for(ref, common.MEMBERSHIP_READ))


@bp.get("/me/memberOf/microsoft.graph.directoryRole")
def me_member_of_roles() -> Response:
    return relations.member_of_roles(_resolve_for(_me(), common.MEMBERSHIP_READ))


@bp.get("/me/transitiveMemberOf")
def me_transitive_member_of() -> Response:
    return _member_of(_me(), True)


def _get_member_objects(ref: str) -> Response:
    user_id = _resolve_for(ref, common.MEMBERSHIP_READ)
    body = common.json_body()
    flag = body.get("securityEnabledOnly")
    if not isinstance(flag, bool):
        raise bad_request("One or more parameters of the function import 'getMemberObjects' are missing from the "
                          "request payload. The missing parameters are: securityEnabledOnly.")
    ids = relations.member_objects(user_id, flag)
    return common.odata_json({"@odata.context": common.context_url("Collection(Edm.String)"), "value": ids})


@bp.post("/users/<ref>/getMemberObjects")
def get_member_objects(ref: str) -> Response:
    return _get_member_objects(ref)


@bp.post("/me/getMemberObjects")
def me_get_member_objects() -> Response:
    return _get_member_objects(_me())


# ---------------------------------------------------------------------------------------------- licences

def _license_detail_id(user_id: str, sku_id: str) -> str:
    raw = uuid.UUID(user_id).bytes + uuid.UUID(sku_id).bytes if _is_guid(user_id) and _is_guid(sku_id) else (
        f"{user_id}:{sku_id}".encode())
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _license_details(ref: str) -> Response:
    user_id = _resolve_for(ref, common.LICENSE_READ)
    conn = common.db()
    items = []
    for row in conn.execute(
            "SELECT ul.sku_id, ul.disabled_plans, s.sku_part_number, s.service_plans FROM user_licenses ul "
            "JOIN skus s ON s.sku_id = ul.sku_id AND s.tenant_id = ? WHERE ul.user_id = ? ORDER BY ul.rowid",
            (common.tenant(), user_id)):
        disabled = {p.lower() for p in json.loads(row["disabled_plans"])}
        plans = []
        for plan in json.loads(row["service_plans"]):
            plan = dict(plan, appliesTo=plan.get("appliesTo", "User"))
            if plan["servicePlanId"].lower() in disabled:
                plan["provisioningStatus"] = "Disabled"
            plans.append(plan)
        items.append({"id": _license_detail_id(user_id, row["sku_id"]), "skuId": row["sku_id"],
                      "skuPartNumber": row["sku_part_number"], "servicePlans": plans})
    context = common.context_url(f"users('{user_id}')/licenseDetails")
    return common.collection(context, items)


@bp.get("/users/<ref>/licenseDetails")
def license_details(ref: str) -> Response:
    return _license_details(ref)


@bp.get("/me/licenseDetails")
def me_license_details() -> Response:
    return _license_details(_me())


@bp.post("/users/<ref>/assignLicense")
def assign_license(ref: str) -> Response:
    common.require(common.LICENSE_WRITE, write=True)
    body = common.json_body()
    user_id = _resolve(ref)
    with common.store().transaction() as conn:
        obj = directory.assign_licenses(conn, common.tenant(), user_id, body.get("addLicenses"),
                                        body.get("removeLicenses"))
    out = common.project(obj, None, (*listing.USER_DEFAULT, "assignedLicenses", "assignedPlans"))
    return common.odata_json({"@odata.context": common.context_url("users/$entity"), **out})


# ---------------------------------------------------------------------------------------------- sessions

def _revoke(user_id: str) -> Response:
    with common.store().transaction() as conn:
        directory.revoke_sign_in_sessions(conn, common.tenant(), user_id)
    return common.odata_json({"@odata.context": common.context_url("Edm.Boolean"), "value": True})


@bp.post("/users/<ref>/revokeSignInSessions")
def revoke_sign_in_sessions(ref: str) -> Response:
    """Invalidate the user's refresh tokens and browser sessions (docs/microsoft.md §10.4)."""
    user_id = _resolve(ref)
    common.require(common.USER_WRITE, write=not (common.delegated() and user_id == g.caller_oid))
    return _revoke(user_id)


@bp.post("/me/revokeSignInSessions")
def me_revoke_sign_in_sessions() -> Response:
    user_id = _me()
    common.require(common.USER_WRITE)
    return _revoke(user_id)
