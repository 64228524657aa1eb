"""Graph emulator: groups, members, owners, create group, subscribedSkus, organization (docs/microsoft.md §5.2–§5.7)."""

from __future__ import annotations

from emulator.server import create_app
from tests.emulator.graph_support import E5, Graph, assert_error
from tests.emulator.support import ADMIN, PLAIN

EXISTS = "One or more added object references already exist for the following modified properties: 'members'."
BAD_NICK = "Invalid value specified for property 'mailNickname' of resource 'Group'."
TAKEN = "Another object with the same value for property mailNickname already exists."
NO_PRIVS = "Insufficient privileges to complete the operation."


def ref(object_id: str) -> dict:
    return {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{object_id}"}


def not_found(object_id: str) -> str:
    return (f"Resource '{object_id}' does not exist or one of its queried reference-property objects are not "
            "present.")


def test_list_and_filter_groups(graph: Graph):
    body = graph.get("/groups?$select=id,displayName,groupTypes,mailEnabled,securityEnabled&$top=3").get_json()
    assert body["@odata.context"] == ("http://localhost/v1.0/$metadata#groups(id,displayName,groupTypes,mailEnabled,"
                                      "securityEnabled)")
    assert body["value"][0] == {"id": graph.group_id("All Company"), "displayName": "All Company",
                                "groupTypes": ["Unified"], "mailEnabled": True, "securityEnabled": False}
    assert "@odata.nextLink" in body
    unified = graph.walk("/groups?$filter=groupTypes/any(c:c eq 'Unified')&$select=displayName")
    assert len(unified) == 7
    found = graph.get("/groups?$filter=startswith(displayName,'fin') or startswith(mail,'fin')"
                      "&$select=displayName,mail").get_json()["value"]
    assert found == [{"displayName": "Finance", "mail": "Finance@contoso.example"}]
    assert graph.get("/groups?$filter=mailNickname eq 'legal'&$select=id").get_json()["value"] == [
        {"id": graph.group_id("Legal")}]
    total = len(graph.walk("/groups?$select=id&$top=999"))
    assert total == 215


def test_group_default_properties(graph: Graph):
    gid = graph.group_id("Retail")
    body = graph.get(f"/groups/{gid}").get_json()
    assert body["@odata.context"] == "http://localhost/v1.0/$metadata#groups/$entity"
    for key in ("id", "deletedDateTime", "classification", "createdDateTime", "description", "displayName",
                "expirationDateTime", "groupTypes", "isAssignableToRole", "mail", "mailEnabled", "mailNickname",
                "membershipRule", "proxyAddresses", "renewedDateTime", "securityEnabled", "securityIdentifier",
                "visibility"):
        assert key in body, key
    assert body["proxyAddresses"] == ["SMTP:Retail@contoso.example"]
    assert body["securityIdentifier"].startswith("S-1-12-1-")
    assert_error(graph.get("/groups/5b31c38c-2584-42f0-aa47-657fb3a84230"), 404, "Request_ResourceNotFound",
                 not_found("5b31c38c-2584-42f0-aa47-657fb3a84230"))


def test_search_groups(graph: Graph):
    body = graph.get('/groups?$search="displayName:project" AND "description:125"&$select=displayName',
                     headers={"ConsistencyLevel": "eventual"}).get_json()
    assert [g["displayName"] for g in body["value"]] == ["Project Team 125"]


def test_members_carry_type_and_page(graph: Graph):
    gid = graph.group_id("Sales and Marketing")
    body = graph.get(f"/groups/{gid}/members?$select=id,displayName,userPrincipalName&$top=4").get_json()
    assert body["@odata.context"] == ("http://localhost/v1.0/$metadata#directoryObjects(id,displayName,"
                                      "userPrincipalName)")
    assert list(body["value"][0]) == ["@odata.type", "id", "displayName", "userPrincipalName"]
    assert body["value"][0]["@odata.type"] == "#microsoft.graph.user"
    members = graph.walk(f"/groups/{gid}/members?$select=id&$top=4")
    assert len(members) == len({m["id"] for m in members}) == 9
    resp = graph.get(f"/groups/{gid}/members/$count", headers={"ConsistencyLevel": "eventual"})
    assert (resp.status_code, resp.get_data(as_text=True)) == (200, "9")
    owners = graph.get(f"/groups/{gid}/owners?$select=displayName").get_json()["value"]
    assert owners == [{"@odata.type": "#microsoft.graph.user", "displayName": "Miriam Graham"}]
    counted = graph.get(f"/groups/{gid}/members?$count=true&$top=1",
                        headers={"ConsistencyLevel": "eventual"}).get_json()
    assert counted["@odata.count"] == 9


def test_add_member_ref(graph: Graph):
    gid = graph.group_id("VPN Users")
    uid = graph.user_id(PLAIN)  # already a member
    new = graph.user_id("lee.gu@contoso.example")
    resp = graph.post(f"/groups/{gid}/members/$ref", ref(new))
    assert resp.status_code == 204 and resp.get_data() == b""
    assert new in {m["id"] for m in graph.walk(f"/groups/{gid}/members")}
    assert_error(graph.post(f"/groups/{gid}/members/$ref", ref(new)), 400, "Request_BadRequest", EXISTS)
    assert_error(graph.post(f"/groups/{gid}/members/$ref", ref(uid)), 400, "Request_BadRequest", EXISTS)
    ghost = "0b0b0b0b-1111-2222-3333-444444444444"
    assert_error(graph.post(f"/groups/{gid}/members/$ref", ref(ghost)), 404, "Request_ResourceNotFound",
                 not_found(ghost))
    assert_error(graph.post(f"/groups/{ghost}/members/$ref", ref(uid)), 404, "Request_ResourceNotFound",
                 not_found(ghost))
    token = graph.token(scopes="Group.Read.All")
    assert_error(graph.post(f"/groups/{gid}/members/$ref", ref(new), token=token), 403,
                 "Authorization_RequestDenied", NO_PRIVS)


def test_remove_member_ref(graph: Graph):
    gid = graph.group_id("VPN Users")
    uid = graph.user_id(PLAIN)
    resp = graph.delete(f"/groups/{gid}/members/{uid}/$ref")
    assert resp.status_code == 204 and resp.get_data() == b""
    assert uid not in {m["id"] for m in graph.walk(f"/groups/{gid}/members")}
    assert_error(graph.delete(f"/groups/{gid}/members/{uid}/$ref"), 404, "Request_ResourceNotFound", not_found(uid))
    token = graph.token(scopes="GroupMember.Read.All")
    other = graph.user_id("alex.wilber@contoso.example")
    assert_error(graph.delete(f"/groups/{gid}/members/{other}/$ref", token=token), 403,
                 "Authorization_RequestDenied", NO_PRIVS)


def test_delete_member_without_ref_deletes_the_user(graph: Graph):
    gid = graph.group_id("VPN Users")
    uid = graph.user_id("alex.wilber@contoso.example")
    member_only = graph.token(scopes="GroupMember.ReadWrite.All")
    assert_error(graph.delete(f"/groups/{gid}/members/{uid}", token=member_only), 403,
                 "Authorization_RequestDenied", NO_PRIVS)
    assert graph.get(f"/users/{uid}").status_code == 200
    both = graph.token(scopes="GroupMember.ReadWrite.All User.ReadWrite.All")
    assert graph.delete(f"/groups/{gid}/members/{uid}", token=both).status_code == 204
    assert graph.get(f"/users/{uid}").status_code == 404


def test_patch_members_bind(graph: Graph):
    gid = graph.group_id("Helpdesk")
    ids = [graph.user_id(u) for u in ("adele.vance@contoso.example", "alex.wilber@contoso.example")]
    binds = [f"https://graph.microsoft.com/v1.0/directoryObjects/{i}" for i in ids]
    assert graph.patch(f"/groups/{gid}", {"members@odata.bind": binds}).status_code == 204
    members = {m["id"] for m in graph.walk(f"/groups/{gid}/members")}
    assert set(ids) <= members
    # All or nothing: one existing member fails the whole request and adds none.
    fresh = graph.user_id("megan.bowen@contoso.example")
    resp = graph.patch(f"/groups/{gid}", {"members@odata.bind": [
        f"https://graph.microsoft.com/v1.0/directoryObjects/{fresh}", binds[0]]})
    assert_error(resp, 400, "Request_BadRequest", EXISTS)
    assert fresh not in {m["id"] for m in graph.walk(f"/groups/{gid}/members")}
    ghost = "0b0b0b0b-1111-2222-3333-444444444444"
    assert_error(graph.patch(f"/groups/{gid}", {"members@odata.bind": [
        f"https://graph.microsoft.com/v1.0/directoryObjects/{fresh}",
        f"https://graph.microsoft.com/v1.0/directoryObjects/{ghost}"]}), 404, "Request_ResourceNotFound",
        not_found(ghost))
    assert fresh not in {m["id"] for m in graph.walk(f"/groups/{gid}/members")}
    too_many = graph.patch(f"/groups/{gid}", {"members@odata.bind": [binds[0]] * 21})
    assert_error(too_many, 400, "Request_BadRequest")
    assert graph.patch(f"/groups/{gid}", {"description": "First-line support desk"}).status_code == 204
    assert graph.get(f"/groups/{gid}?$select=description").get_json()["description"] == "First-line support desk"


def test_create_group(graph: Graph):
    owner = graph.user_id(PLAIN)
    member = graph.user_id("alex.wilber@contoso.example")
    resp = graph.post("/groups", {
        "displayName": "Operations group", "description": "Group with designated owner and members",
        "mailEnabled": False, "mailNickname": "operations2019", "securityEnabled": True, "groupTypes": [],
        "owners@odata.bind": [f"https://graph.microsoft.com/v1.0/users/{owner}"],
        "members@odata.bind": [f"https://graph.microsoft.com/v1.0/users/{member}"]})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["@odata.context"] == "http://localhost/v1.0/$metadata#groups/$entity"
    assert resp.headers["Location"] == f"http://localhost/v1.0/groups/{body['id']}"
    assert (body["displayName"], body["mail"], body["mailEnabled"], body["securityEnabled"], body["groupTypes"]) == (
        "Operations group", None, False, True, [])
    assert body["proxyAddresses"] == [] and body["createdDateTime"].endswith("Z")
    assert [m["id"] for m in graph.walk(f"/groups/{body['id']}/members")] == [member]
    assert [m["id"] for m in graph.walk(f"/groups/{body['id']}/owners")] == [owner]


def test_create_microsoft_365_group(graph: Graph):
    resp = graph.post("/groups", {"displayName": "Library", "mailEnabled": True, "mailNickname": "library7423",
                                  "securityEnabled": False, "groupTypes": ["Unified"]})
    body = resp.get_json()
    assert resp.status_code == 201
    assert body["mail"] == "library7423@contoso.example"
    assert body["proxyAddresses"] == ["SMTP:library7423@contoso.example"]
    assert body["visibility"] == "Public"
    # The delegated creator becomes owner when none is given.
    assert [o["id"] for o in graph.walk(f"/groups/{body['id']}/owners")] == [graph.user_id(ADMIN)]


def test_create_group_nickname_rules(graph: Graph):
    base = {"displayName": "X", "mailEnabled": False, "securityEnabled": True, "groupTypes": []}
    for bad in ("has space", "a@b", "a.b", "semi;colon", "x" * 65, "ünïcode", "", "(x)", "a,b", 'q"q', "a\\b"):
        assert_error(graph.post("/groups", {**base, "mailNickname": bad}), 400, "Request_BadRequest", BAD_NICK)
    assert graph.post("/groups", {**base, "mailNickname": "x" * 64}).status_code == 201
    unified = {"displayName": "Y", "mailEnabled": True, "securityEnabled": False, "groupTypes": ["Unified"]}
    assert_error(graph.post("/groups", {**unified, "mailNickname": "Retail"}), 400, "Request_BadRequest", TAKEN)
    assert_error(graph.post("/groups", {**unified, "mailNickname": "retail"}), 400, "Request_BadRequest", TAKEN)
    assert graph.post("/groups", {**unified, "mailNickname": "retail2"}).status_code == 201
    assert_error(graph.post("/groups", {**unified, "mailNickname": "retail2"}), 400, "Request_BadRequest", TAKEN)


def test_create_group_other_errors(graph: Graph):
    base = {"displayName": "Z", "mailEnabled": False, "mailNickname": "zz", "securityEnabled": True}
    assert_error(graph.post("/groups", {k: v for k, v in base.items() if k != "securityEnabled"}), 400,
                 "Request_BadRequest", "Invalid value specified for property 'securityEnabled' of resource 'Group'.")
    uid = graph.user_id(PLAIN)
    binds = [f"https://graph.microsoft.com/v1.0/users/{uid}"] * 21
    assert_error(graph.post("/groups", {**base, "members@odata.bind": binds}), 400, "Request_BadRequest")
    assert_error(graph.post("/groups", base, token=graph.token(scopes="GroupMember.ReadWrite.All")), 403,
                 "Authorization_RequestDenied", NO_PRIVS)
    assert_error(graph.post("/groups", base, token=graph.token(PLAIN)), 403, "Authorization_RequestDenied", NO_PRIVS)
    app_token = graph.token(None, roles=["Group.Create"])
    assert graph.post("/groups", base, token=app_token).status_code == 201


def test_delete_group(graph: Graph):
    gid = graph.group_id("Executives")
    assert graph.delete(f"/groups/{gid}").status_code == 204
    assert graph.get(f"/groups/{gid}").status_code == 404
    assert_error(graph.delete(f"/groups/{gid}"), 404, "Request_ResourceNotFound", not_found(gid))


def test_subscribed_skus(graph: Graph):
    body = graph.get("/subscribedSkus").get_json()
    assert body["@odata.context"] == "http://localhost/v1.0/$metadata#subscribedSkus"
    sku = {s["skuId"]: s for s in body["value"]}[E5]
    assert sku["id"] == f"{graph.tenant_id}_{E5}"
    assert sku["skuPartNumber"] == "SPE_E5"
    assert sku["prepaidUnits"] == {"enabled": 10, "lockedOut": 0, "suspended": 0, "warning": 0}
    assert sku["consumedUnits"] == graph.conn.execute(
        "SELECT count(*) FROM user_licenses WHERE sku_id = ?", (E5,)).fetchone()[0] == 9
    assert sku["capabilityStatus"] == "Enabled" and sku["appliesTo"] == "User"
    assert set(sku["servicePlans"][0]) == {"servicePlanId", "servicePlanName", "provisioningStatus", "appliesTo"}
    assert set(sku) == {"accountName", "accountId", "appliesTo", "capabilityStatus", "consumedUnits", "id",
                        "prepaidUnits", "servicePlans", "skuId", "skuPartNumber", "subscriptionIds"}


def test_organization(graph: Graph):
    body = graph.get("/organization", token=graph.token(PLAIN, scopes="User.Read")).get_json()
    org = body["value"][0]
    assert org["id"] == graph.tenant_id
    assert org["displayName"] == "Contoso"
    assert org["verifiedDomains"][0]["name"] == "contoso.example"
    assert org["verifiedDomains"][0]["isDefault"] is True


def test_transitive_members(graph: Graph):
    outer = graph.group_id("Executives")
    inner = graph.group_id("Legal")
    assert graph.post(f"/groups/{outer}/members/$ref",
                      {"@odata.id": f"https://graph.microsoft.com/v1.0/groups/{inner}"}).status_code == 204
    direct = graph.walk(f"/groups/{outer}/members?$select=id")
    nested = graph.walk(f"/groups/{outer}/transitiveMembers?$select=id&$top=3")
    assert {"@odata.type": "#microsoft.graph.group", "id": inner} in direct
    legal = {m["id"] for m in graph.walk(f"/groups/{inner}/members?$select=id")}
    assert {m["id"] for m in nested} == {m["id"] for m in direct} | legal


def test_tenants_are_isolated(tmp_path):
    app = create_app(tmp_path, tenants=2)
    two = Graph(app)
    try:
        second = two.conn.execute("SELECT id FROM tenants ORDER BY rowid LIMIT 1 OFFSET 1").fetchone()[0]
        row = two.conn.execute("SELECT id FROM users WHERE tenant_id = ? AND user_principal_name LIKE 'admin@%'",
                               (second,)).fetchone()
        token = two.token(None, roles=["User.Read.All", "Organization.Read.All"], tid=second)
        users = two.walk("/users?$select=id,userPrincipalName", token=token)
        assert len(users) == 12 and all(u["userPrincipalName"].endswith("@fabrikam.example") for u in users)
        contoso_user = two.user_id(PLAIN)
        assert two.get(f"/users/{contoso_user}", token=token).status_code == 404
        assert two.get(f"/users/{row[0]}", token=token).status_code == 200
        skus = {s["skuPartNumber"]: s["consumedUnits"] for s in two.get("/subscribedSkus", token=token)
                .get_json()["value"]}
        expected = two.conn.execute("SELECT count(*) FROM user_licenses ul JOIN users u ON u.id = ul.user_id "
                                    "WHERE u.tenant_id = ? AND ul.sku_id = ?", (second, E5)).fetchone()[0]
        assert skus["SPE_E5"] == expected < 9
    finally:
        app.extensions["emulator.store"].close()


EVENTUAL = {"ConsistencyLevel": "eventual"}


def test_user_members_cast_takes_filter_search_orderby_and_count(graph: Graph):
    gid = graph.group_id("Sales and Marketing")
    path = f"/groups/{gid}/members/microsoft.graph.user"
    everyone = graph.get(f"{path}?$count=true&$select=id,displayName&$orderby=displayName",
                         headers=EVENTUAL).get_json()
    assert everyone["@odata.context"] == "http://localhost/v1.0/$metadata#users(id,displayName)"
    assert everyone["@odata.count"] == 9
    names = [m["displayName"] for m in everyone["value"]]
    assert names == sorted(names, key=str.lower) and len(names) == 9
    assert everyone["value"][0]["@odata.type"] == "#microsoft.graph.user"
    first = names[0]
    found = graph.get(f"{path}?$count=true&$filter=startswith(displayName,'{first[:3]}')&$select=displayName",
                      headers=EVENTUAL).get_json()
    assert first in [m["displayName"] for m in found["value"]]
    assert found["@odata.count"] == len(found["value"])
    searched = graph.get(f'{path}?$count=true&$search="displayName:{first.split()[0]}"&$select=displayName',
                         headers=EVENTUAL).get_json()
    assert first in [m["displayName"] for m in searched["value"]]
    member = graph.get(f"{path}?$select=id&$top=1").get_json()["value"][0]["id"]
    one = graph.get(f"{path}?$count=true&$filter=id eq '{member}'&$select=id", headers=EVENTUAL).get_json()
    assert (one["@odata.count"], one["value"][0]["id"]) == (1, member)
    stranger = graph.user_id("admin@contoso.example")
    assert stranger not in {m["id"] for m in everyone["value"]}
    none = graph.get(f"{path}?$count=true&$filter=id eq '{stranger}'&$select=id", headers=EVENTUAL).get_json()
    assert (none["@odata.count"], none["value"]) == (0, [])
    # a filter on ids checks each id against the membership key (the bulk preview's question)
    mixed = graph.get(f"{path}?$count=true&$filter=id in ('{member}','{stranger}')&$select=id",
                      headers=EVENTUAL).get_json()
    assert (mixed["@odata.count"], [m["id"] for m in mixed["value"]]) == (1, [member])


def test_user_members_cast_refuses_what_graph_refuses(graph: Graph):
    gid = graph.group_id("Sales and Marketing")
    path = f"/groups/{gid}/members/microsoft.graph.user"
    resp = graph.get(f'{path}?$search="displayName:a"')
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "Request_UnsupportedQuery"
    resp = graph.get(f"{path}?$filter=startswith(displayName,'a')&$orderby=displayName")
    assert_error(resp, 400, "Request_UnsupportedQuery", "Sorting not supported for current query.")
