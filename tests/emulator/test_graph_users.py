"""Graph emulator: auth, scopes, common headers, the /users family (docs/microsoft.md §5.0, §5.1, §5.3, §5.8–§5.10)."""

from __future__ import annotations

from emulator import directory
from emulator.graph import listing, odata
from emulator.server import create_app
from tests.emulator.graph_support import E3, E5, ODATA_JSON, Graph, assert_error
from tests.emulator.support import ADMIN, PLAIN

EMPTY = "Access token is empty."
PAGE_SIZE_MSG = "Invalid page size specified: '{}'. Must be between 1 and 999 inclusive."
NO_PRIVS = "Insufficient privileges to complete the operation."


# ---------------------------------------------------------------------------------------------- auth


def test_missing_token_is_401(graph: Graph):
    resp = graph.client.get("/v1.0/users")
    assert_error(resp, 401, "InvalidAuthenticationToken", EMPTY)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    resp = graph.client.get("/v1.0/users", headers={"Authorization": "Bearer "})
    assert_error(resp, 401, "InvalidAuthenticationToken", EMPTY)


def test_expired_and_foreign_tokens_are_401(graph: Graph):
    expired = graph.token(lifetime=-10)
    assert_error(graph.get("/users", token=expired), 401, "InvalidAuthenticationToken",
                 "Access token has expired or is not yet valid.")
    other_aud = graph.token(aud="api://something-else")
    assert_error(graph.get("/users", token=other_aud), 401, "InvalidAuthenticationToken",
                 "Access token validation failure. Invalid audience.")
    assert_error(graph.get("/users", token="not.a.jwt"), 401, "InvalidAuthenticationToken")


def test_missing_scope_is_403(graph: Graph):
    token = graph.token(scopes="User.Read Organization.Read.All")
    assert_error(graph.get("/users", token=token), 403, "Authorization_RequestDenied", NO_PRIVS)
    assert_error(graph.get("/groups", token=token), 403, "Authorization_RequestDenied", NO_PRIVS)
    token = graph.token(scopes="User.Read.All")
    assert_error(graph.get("/subscribedSkus", token=token), 403, "Authorization_RequestDenied", NO_PRIVS)
    assert graph.get("/users", token=token).status_code == 200


def test_broader_scopes_are_accepted(graph: Graph):
    token = graph.token(scopes="Directory.Read.All")
    for path in ("/users", "/groups", "/subscribedSkus", "/users/delta"):
        assert graph.get(path, token=token).status_code == 200, path
    token = graph.token(scopes="Directory.ReadWrite.All")
    uid = graph.user_id(PLAIN)
    assert graph.patch(f"/users/{uid}", {"jobTitle": "Lead"}, token=token).status_code == 204


def test_delegated_write_needs_admin_role(graph: Graph):
    gid = graph.group_id("VPN Users")
    uid = graph.user_id("lee.gu@contoso.example")
    plain = graph.token(PLAIN)
    resp = graph.post(f"/groups/{gid}/members/$ref",
                      {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{uid}"}, token=plain)
    assert_error(resp, 403, "Authorization_RequestDenied", NO_PRIVS)
    groups_admin = graph.token("patti.fernandez@contoso.example")
    resp = graph.post(f"/groups/{gid}/members/$ref",
                      {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{uid}"}, token=groups_admin)
    assert resp.status_code == 204


def test_app_only_tokens_use_roles(graph: Graph):
    token = graph.token(None, roles=["User.Read.All"])
    assert graph.get("/users?$top=1", token=token).status_code == 200
    assert_error(graph.get("/groups", token=token), 403, "Authorization_RequestDenied", NO_PRIVS)
    assert_error(graph.get("/me", token=token), 400, "BadRequest",
                 "/me request is only valid with delegated authentication flow.")


def test_success_headers(graph: Graph):
    resp = graph.get("/users?$top=1", headers={"client-request-id": "8f9c6c3e-1111-2222-3333-444455556666"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == ODATA_JSON
    assert resp.headers["OData-Version"] == "4.0"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["client-request-id"] == "8f9c6c3e-1111-2222-3333-444455556666"
    assert len(resp.headers["request-id"]) == 36
    err = graph.get("/users?$top=0", headers={"client-request-id": "abc"})
    assert err.get_json()["error"]["innerError"]["client-request-id"] == "abc"


def test_unknown_segment_and_method(graph: Graph):
    assert_error(graph.get("/nothing"), 400, "BadRequest", "Resource not found for the segment 'nothing'.")
    assert_error(graph.call("PUT", "/users"), 405, "Request_BadRequest",
                 "Specified HTTP method is not allowed for the request target.")


# ---------------------------------------------------------------------------------------------- list


def test_list_users_default_properties_and_paging(graph: Graph):
    resp = graph.get("/users")
    body = resp.get_json()
    assert body["@odata.context"] == "http://localhost/v1.0/$metadata#users"
    assert len(body["value"]) == 50
    assert "@odata.nextLink" not in body and "@odata.count" not in body
    first = body["value"][0]
    assert list(first) == list(listing.USER_DEFAULT)
    assert first["userPrincipalName"] == ADMIN
    assert "accountEnabled" not in first


def test_select_and_context(graph: Graph):
    body = graph.get("/users?$select=id,displayName,accountEnabled,usageLocation,assignedLicenses&$top=1").get_json()
    assert body["@odata.context"] == ("http://localhost/v1.0/$metadata#users(id,displayName,accountEnabled,"
                                      "usageLocation,assignedLicenses)")
    user = body["value"][0]
    assert list(user) == ["id", "displayName", "accountEnabled", "usageLocation", "assignedLicenses"]
    assert user["accountEnabled"] is True
    assert {"skuId": E5, "disabledPlans": []} in user["assignedLicenses"]
    assert_error(graph.get("/users?$select=id,nope"), 400, "BadRequest",
                 "Could not find a property named 'nope' on type 'microsoft.graph.user'.")


def test_top_limits(graph: Graph):
    for bad in ("0", "1000", "-5"):
        assert_error(graph.get(f"/users?$top={bad}"), 400, "Request_UnsupportedQuery", PAGE_SIZE_MSG.format(bad))
    assert len(graph.get("/users?$top=999").get_json()["value"]) == 50


def test_next_links_cover_every_user_once(graph: Graph):
    resp = graph.get("/users?$select=id,displayName&$top=7")
    body = resp.get_json()
    link = body["@odata.nextLink"]
    assert link.startswith("http://localhost/v1.0/users?$select=id,displayName&$top=7&$skiptoken=")
    items = graph.walk("/users?$select=id,displayName&$top=7")
    ids = [u["id"] for u in items]
    assert len(ids) == len(set(ids)) == 50
    filtered = graph.walk("/users?$filter=startswith(displayName,'a')&$top=2&$select=displayName")
    assert sorted(u["displayName"] for u in filtered) == sorted(
        r[0] for r in graph.conn.execute("SELECT display_name FROM users WHERE display_name LIKE 'a%'"))
    assert_error(graph.get("/users?$skiptoken=garbage"), 400, "Request_BadRequest")


def test_filter_eq_startswith_and_quotes(graph: Graph):
    body = graph.get("/users?$filter=displayName eq 'Ann O''Neil'&$select=displayName,userPrincipalName").get_json()
    assert body["value"] == [{"displayName": "Ann O'Neil", "userPrincipalName": "ann.oneil@contoso.example"}]
    q = ("/users?$filter=startswith(displayName,'ann') or startswith(mail,'ann') or "
         "startswith(userPrincipalName,'ann')&$select=displayName")
    assert sorted(u["displayName"] for u in graph.get(q).get_json()["value"]) == [
        "Ann O'Neil", "Anne Wallace", "Annette Hill"]
    evil = "x') or startswith(displayName,'"
    escaped = evil.replace("'", "''")
    body = graph.get(f"/users?$filter=startswith(displayName,'{escaped}')").get_json()
    assert body["value"] == []
    assert graph.get("/users?$filter=displayName eq 'O'Neil'").status_code == 400


def test_filter_licences_and_errors(graph: Graph):
    body = graph.get(f"/users?$filter=assignedLicenses/any(x:x/skuId eq {E5})&$select=id").get_json()
    assert len(body["value"]) == 9
    assert_error(graph.get("/users?$filter=aboutMe eq 'x'"), 400, "Request_UnsupportedQuery",
                 "Unsupported or invalid query filter clause specified for property 'aboutMe' of resource 'User'.")
    err = assert_error(graph.get("/users?$filter=endswith(mail,'.example')"), 400, "Request_UnsupportedQuery")
    assert err["message"].startswith("Operator 'endsWith' is not supported because the required parameters")
    resp = graph.get("/users?$filter=endswith(mail,'@contoso.example')&$count=true&$select=id",
                     headers={"ConsistencyLevel": "eventual"})
    assert resp.status_code == 200
    assert resp.get_json()["@odata.count"] == len(resp.get_json()["value"]) == 45


def test_search_requires_header(graph: Graph):
    assert_error(graph.get('/users?$search="displayName:ann"'), 400, "Request_UnsupportedQuery",
                 "Request with $search query parameter only works through MSGraph with a special request header: "
                 "'ConsistencyLevel: eventual'")


def test_search_tokens_and_count(graph: Graph):
    hdr = {"ConsistencyLevel": "eventual"}
    body = graph.get('/users?$search="displayName:ann"&$count=true&$select=displayName&$top=2',
                     headers=hdr).get_json()
    assert body["@odata.count"] == 3
    assert "@odata.nextLink" in body
    names = [u["displayName"] for u in graph.walk('/users?$search="displayName:ann"&$select=displayName&$top=2',
                                                  headers=hdr)]
    assert sorted(names) == ["Ann O'Neil", "Anne Wallace", "Annette Hill"]  # not "Joanne"
    second = graph.get(body["@odata.nextLink"], headers=hdr).get_json()
    assert "@odata.count" not in second
    body = graph.get('/users?$search="displayName:ann" AND "department:R"&$select=displayName',
                     headers=hdr).get_json()
    assert [u["displayName"] for u in body["value"]] == ["Annette Hill"]


def test_count_endpoint(graph: Graph):
    resp = graph.get("/users/$count", headers={"ConsistencyLevel": "eventual"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.get_data(as_text=True) == "50"
    assert_error(graph.get("/users/$count"), 400, "Request_BadRequest", "$count is not currently supported.")
    assert_error(graph.get("/users?$count=true"), 400, "Request_BadRequest", "$count is not currently supported.")


# ---------------------------------------------------------------------------------------------- one user


def test_get_user_by_id_and_upn(graph: Graph):
    uid = graph.user_id(PLAIN)
    by_id = graph.get(f"/users/{uid}").get_json()
    by_upn = graph.get(f"/users/{PLAIN.upper()}").get_json()
    assert by_id == by_upn
    assert by_id["@odata.context"] == "http://localhost/v1.0/$metadata#users/$entity"
    assert by_id["displayName"] == "Adele Vance"
    sel = graph.get(f"/users/{uid}?$select=usageLocation,accountEnabled").get_json()
    assert sel == {"@odata.context": "http://localhost/v1.0/$metadata#users(usageLocation,accountEnabled)/$entity",
                   "usageLocation": "GB", "accountEnabled": True}
    missing = "5b31c38c-2584-42f0-aa47-657fb3a84230"
    assert_error(graph.get(f"/users/{missing}"), 404, "Request_ResourceNotFound",
                 f"Resource '{missing}' does not exist or one of its queried reference-property objects are not "
                 "present.")


def test_me_and_self_read_with_user_read(graph: Graph):
    token = graph.token(PLAIN, scopes="User.Read")
    me = graph.get("/me", token=token).get_json()
    assert me["userPrincipalName"] == PLAIN
    assert graph.get(f"/users/{me['id']}/transitiveMemberOf", token=token).status_code == 200
    other = graph.user_id(ADMIN)
    assert_error(graph.get(f"/users/{other}", token=token), 403, "Authorization_RequestDenied", NO_PRIVS)
    # Permission is checked before existence: no 404 oracle for callers who may not read users.
    ghost = "5b31c38c-2584-42f0-aa47-657fb3a84230"
    assert_error(graph.get(f"/users/{ghost}", token=token), 403, "Authorization_RequestDenied", NO_PRIVS)
    assert_error(graph.get(f"/users/{ghost}/licenseDetails", token=token), 403, "Authorization_RequestDenied")


def test_patch_and_delete_user(graph: Graph):
    uid = graph.user_id("grady.archie@contoso.example")
    resp = graph.patch(f"/users/{uid}", {"usageLocation": "NL"})
    assert resp.status_code == 204 and resp.get_data() == b""
    assert graph.get(f"/users/{uid}?$select=usageLocation").get_json()["usageLocation"] == "NL"
    assert_error(graph.patch(f"/users/{uid}", {"usageLocation": "Netherlands"}), 400, "Request_BadRequest",
                 "Invalid value specified for property 'usageLocation' of resource 'User'.")
    assert_error(graph.patch(f"/users/{uid}", {"usageLocation": "NL"}, token=graph.token(scopes="User.Read.All")),
                 403, "Authorization_RequestDenied", NO_PRIVS)
    assert graph.delete(f"/users/{uid}").status_code == 204
    assert graph.get(f"/users/{uid}").status_code == 404


def test_member_of_transitive_and_get_member_objects(graph: Graph):
    overage = graph.user_id("isaiah.langer@contoso.example")
    direct = graph.walk(f"/users/{overage}/memberOf?$select=id,displayName&$top=50")
    assert len(direct) > 200
    assert all(item["@odata.type"] == "#microsoft.graph.group" for item in direct)
    transitive = graph.walk(f"/users/{overage}/transitiveMemberOf?$select=id&$top=999")
    assert {g["id"] for g in transitive} == {g["id"] for g in direct}
    resp = graph.post(f"/users/{overage}/getMemberObjects", {"securityEnabledOnly": False})
    body = resp.get_json()
    assert body["@odata.context"] == "http://localhost/v1.0/$metadata#Collection(Edm.String)"
    assert set(body["value"]) == {g["id"] for g in direct}
    secure = graph.post(f"/users/{overage}/getMemberObjects", {"securityEnabledOnly": True}).get_json()["value"]
    assert 0 < len(secure) < len(body["value"])
    assert graph.post(f"/users/{overage}/getMemberObjects", {}).status_code == 400


def test_member_of_lists_directory_roles_among_the_groups(graph: Graph):
    admin = graph.user_id(ADMIN)
    items = graph.walk(f"/users/{admin}/memberOf?$select=id,displayName")
    roles = [item for item in items if item["@odata.type"] == "#microsoft.graph.directoryRole"]
    assert [r["displayName"] for r in roles] == ["Global Administrator"]
    assert roles[0]["id"] != "62e90394-69f5-4237-9190-012177145e10"  # the tenant's role object, not the template
    assert roles[0]["id"] in {item["id"] for item in graph.walk(f"/users/{admin}/transitiveMemberOf")}
    plain = graph.walk(f"/users/{graph.user_id(PLAIN)}/memberOf")
    assert all(item["@odata.type"] == "#microsoft.graph.group" for item in plain)
    cast = graph.get(f"/users/{admin}/memberOf/microsoft.graph.directoryRole?$select=id,roleTemplateId").get_json()
    assert cast["@odata.context"].endswith("$metadata#directoryRoles(id,roleTemplateId)")
    assert cast["value"] == [{"@odata.type": "#microsoft.graph.directoryRole", "id": roles[0]["id"],
                              "roleTemplateId": "62e90394-69f5-4237-9190-012177145e10"}]
    assert graph.get(f"/users/{graph.user_id(PLAIN)}/memberOf/microsoft.graph.directoryRole").get_json()["value"] == []
    assert graph.get(f"/users/{admin}/memberOf/microsoft.graph.directoryRole?$select=mail").status_code == 400


def test_nested_groups_are_transitive(graph: Graph):
    uid = graph.user_id(PLAIN)
    outer = graph.group_id("Executives")
    inner = graph.group_id("Retail")
    assert graph.post(f"/groups/{outer}/members/$ref",
                      {"@odata.id": f"https://graph.microsoft.com/v1.0/groups/{inner}"}).status_code == 204
    direct = {g["id"] for g in graph.walk(f"/users/{uid}/memberOf")}
    transitive = {g["id"] for g in graph.walk(f"/users/{uid}/transitiveMemberOf")}
    assert outer not in direct and outer in transitive and inner in direct


# ---------------------------------------------------------------------------------------------- licences


def test_license_details(graph: Graph):
    uid = graph.user_id(ADMIN)
    body = graph.get(f"/users/{uid}/licenseDetails").get_json()
    assert body["@odata.context"] == f"http://localhost/v1.0/$metadata#users('{uid}')/licenseDetails"
    parts = {d["skuPartNumber"] for d in body["value"]}
    assert "SPE_E5" in parts
    detail = body["value"][0]
    assert set(detail) == {"id", "skuId", "skuPartNumber", "servicePlans"}
    assert set(detail["servicePlans"][0]) == {"servicePlanId", "servicePlanName", "provisioningStatus", "appliesTo"}


def test_assign_license_success_and_disabled_plans(graph: Graph):
    uid = graph.user_id("alex.wilber@contoso.example")
    teams = "57ff2da0-773e-42df-b2af-ffb7a2317929"
    resp = graph.post(f"/users/{uid}/assignLicense",
                      {"addLicenses": [{"skuId": E5, "disabledPlans": [teams]}], "removeLicenses": [E3]})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["@odata.context"] == "http://localhost/v1.0/$metadata#users/$entity"
    assert body["id"] == uid
    assert body["assignedLicenses"] == [{"disabledPlans": [teams], "skuId": E5}]
    details = graph.get(f"/users/{uid}/licenseDetails").get_json()["value"]
    plans = {p["servicePlanId"]: p["provisioningStatus"] for p in details[0]["servicePlans"]}
    assert plans[teams] == "Disabled"
    skus = {s["skuId"]: s for s in graph.get("/subscribedSkus").get_json()["value"]}
    assert skus[E5]["consumedUnits"] == skus[E5]["prepaidUnits"]["enabled"] == 10


def test_assign_license_errors(graph: Graph):
    no_loc = graph.user_id("grady.archie@contoso.example")
    assert_error(graph.post(f"/users/{no_loc}/assignLicense", {"addLicenses": [{"skuId": E5, "disabledPlans": []}],
                                                               "removeLicenses": []}),
                 400, "Request_BadRequest", "License assignment cannot be done for user with invalid usage location.")
    uid = graph.user_id("alex.wilber@contoso.example")
    other = graph.user_id("christie.cline@contoso.example")
    ok = graph.post(f"/users/{uid}/assignLicense", {"addLicenses": [{"skuId": E5, "disabledPlans": []}],
                                                    "removeLicenses": []})
    assert ok.status_code == 200
    assert_error(graph.post(f"/users/{other}/assignLicense", {"addLicenses": [{"skuId": E5, "disabledPlans": []}],
                                                              "removeLicenses": []}),
                 400, "Request_BadRequest", f"Subscription with SKU {E5} does not have any available licenses.")
    err = assert_error(graph.post(f"/users/{uid}/assignLicense", {"addLicenses": []}), 400, "Request_BadRequest")
    assert err["message"].endswith("The missing parameters are: removeLicenses.")
    unknown = "11111111-2222-3333-4444-555555555555"
    assert_error(graph.post(f"/users/{uid}/assignLicense", {"addLicenses": [{"skuId": unknown}],
                                                            "removeLicenses": []}),
                 400, "Request_BadRequest", f"License {unknown} does not correspond to a valid company License.")
    token = graph.token(scopes="User.Read.All")
    assert_error(graph.post(f"/users/{uid}/assignLicense", {"addLicenses": [], "removeLicenses": []}, token=token),
                 403, "Authorization_RequestDenied", NO_PRIVS)
    license_admin = graph.token("lee.gu@contoso.example", scopes="LicenseAssignment.ReadWrite.All")
    assert graph.post(f"/users/{uid}/assignLicense", {"addLicenses": [], "removeLicenses": [E5]},
                      token=license_admin).status_code == 200


def test_orderby_display_name_pages_in_order(graph: Graph):
    names = [u["displayName"] for u in graph.walk("/users?$orderby=displayName&$select=displayName&$top=6")]
    assert len(names) == 50
    assert names == sorted(names, key=str.lower)
    desc = [u["userPrincipalName"] for u in graph.walk("/users?$orderby=userPrincipalName desc&$top=9"
                                                        "&$select=userPrincipalName")]
    assert desc == sorted(desc, reverse=True) and len(desc) == 50
    assert_error(graph.get("/users?$orderby=jobTitle"), 400, "Request_UnsupportedQuery",
                 "Sorting not supported for current query.")
    assert_error(graph.get("/users?$orderby=displayName&$filter=department eq 'Sales'"), 400,
                 "Request_UnsupportedQuery", "Sorting not supported for current query.")
    ok = graph.get("/users?$orderby=displayName&$filter=department eq 'Sales'&$count=true",
                   headers={"ConsistencyLevel": "eventual"})
    assert ok.status_code == 200 and ok.get_json()["@odata.count"] == len(ok.get_json()["value"])
    first = graph.get("/users?$top=5").get_json()["@odata.nextLink"]
    token = first.split("$skiptoken=")[1]
    assert_error(graph.get(f"/users?$orderby=displayName&$skiptoken={token}"), 400, "Request_BadRequest")


def test_newest_first_pages_in_order_through_the_sorts_index(graph: Graph):
    """$orderby=createdDateTime desc (the User List's "newest first") walks an index, page after page: every
    page's query is a SEARCH of the sort's index, never a scan and sort of every user."""
    statements: list[str] = []
    graph.conn.set_trace_callback(statements.append)
    try:
        newest = graph.walk("/users?$orderby=createdDateTime desc&$select=id,createdDateTime&$top=7&$count=true",
                            headers={"ConsistencyLevel": "eventual"})
    finally:
        graph.conn.set_trace_callback(None)
    stamps = [u["createdDateTime"] for u in newest]
    assert len(newest) == len({u["id"] for u in newest}) == 50 and stamps == sorted(stamps, reverse=True)
    pages = [sql for sql in statements if sql.startswith("SELECT *, COALESCE(lower(users.created)")]
    assert len(pages) == 8
    for sql in pages:
        plan = " ".join(row[3] for row in graph.conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "USING INDEX users_order_created" in plan and "TEMP B-TREE" not in plan, plan


def test_large_tenant_paging_covers_every_user_once(tmp_path):
    app = create_app(tmp_path, users=2500)
    big = Graph(app)
    try:
        resp = big.get("/users?$select=id,userPrincipalName&$top=999")
        body = resp.get_json()
        assert len(body["value"]) == 999
        assert body["@odata.nextLink"].startswith("http://localhost/v1.0/users?$select=id,userPrincipalName&$top=999"
                                                  "&$skiptoken=")
        items = big.walk("/users?$select=id,userPrincipalName&$top=999")
        assert len(items) == len({u["id"] for u in items}) == 2500
        sales = big.walk("/users?$filter=department eq 'Sales'&$select=id&$top=100")
        expected = big.conn.execute("SELECT count(*) FROM users WHERE department = 'Sales'").fetchone()[0]
        assert len(sales) == len({u["id"] for u in sales}) == expected > 200
        delta_items: list[dict] = []
        url = "/users/delta?$select=id"
        while url:
            page = big.get(url).get_json()
            delta_items.extend(page["value"])
            url = page.get("@odata.nextLink")
        assert len({u["id"] for u in delta_items}) == len(delta_items) == 2500
    finally:
        app.extensions["emulator.store"].close()


def test_fast_projection_matches_full_json(graph: Graph):
    uid = graph.user_id(PLAIN)
    graph.patch(f"/users/{uid}", {"mobilePhone": "+44 1", "businessPhones": ["+44 2"], "employeeId": "E7"})
    rows = graph.conn.execute("SELECT * FROM users ORDER BY seq").fetchall()
    licences = directory.licences_for(graph.conn, [r["id"] for r in rows])
    keys = list(odata.USER_SCHEMA.select_props)
    for row in rows:
        full = directory.user_to_graph(row, licences[row["id"]])
        assert directory.user_projection(row, keys, licences[row["id"]]) == {k: full.get(k) for k in keys}


def test_licence_count_filter_and_created_sort_need_advanced_queries(graph: Graph):
    eventual = {"ConsistencyLevel": "eventual"}
    licensed = graph.get("/users?$filter=assignedLicenses/$count ne 0&$count=true&$select=id&$top=1",
                         headers=eventual).get_json()["@odata.count"]
    unlicensed = graph.get("/users?$filter=assignedLicenses/$count eq 0&$count=true&$select=id&$top=1",
                           headers=eventual).get_json()["@odata.count"]
    total = graph.get("/users?$count=true&$select=id&$top=1", headers=eventual).get_json()["@odata.count"]
    assert licensed > 0 and unlicensed > 0 and licensed + unlicensed == total
    resp = graph.get("/users?$filter=assignedLicenses/$count ne 0&$select=id")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "Request_UnsupportedQuery"
    resp = graph.get("/users?$filter=assignedLicenses/$count gt 2&$count=true&$select=id", headers=eventual)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "Request_UnsupportedQuery"
    resp = graph.get("/users?$orderby=createdDateTime&$select=id")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "Request_UnsupportedQuery"
    ordered = graph.get("/users?$orderby=createdDateTime desc&$count=true&$select=id,createdDateTime&$top=5",
                        headers=eventual).get_json()["value"]
    stamps = [u["createdDateTime"] for u in ordered]
    assert stamps == sorted(stamps, reverse=True)
    both = graph.get("/users?$filter=accountEnabled eq true and department eq 'Sales'&$orderby=displayName desc"
                     "&$count=true&$select=displayName,department,accountEnabled", headers=eventual).get_json()
    assert both["value"] and all(u["department"] == "Sales" and u["accountEnabled"] for u in both["value"])
    names = [u["displayName"].lower() for u in both["value"]]
    assert names == sorted(names, reverse=True)
