"""Graph emulator: /users/delta and /groups/delta (docs/microsoft.md §6)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from emulator import clock, directory
from tests.emulator.graph_support import Graph, assert_error
from tests.emulator.support import PLAIN

SELECT = "id,displayName,mail,userPrincipalName,accountEnabled,assignedLicenses"


def round_trip(graph: Graph, url: str, **kw) -> tuple[list[dict], str, int]:
    """Follow one delta round to its deltaLink: (items, deltaLink, pages)."""
    items: list[dict] = []
    pages = 0
    while True:
        resp = graph.get(url, **kw)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        pages += 1
        items.extend(body["value"])
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


def test_initial_round_pages_and_select(graph: Graph):
    headers = {"Prefer": "odata.maxpagesize=20"}
    first = graph.get(f"/users/delta?$select={SELECT}", headers=headers).get_json()
    assert first["@odata.context"] == f"http://localhost/v1.0/$metadata#users({SELECT})"
    assert first["@odata.nextLink"].startswith("http://localhost/v1.0/users/delta?$skiptoken=")
    assert "$select" not in first["@odata.nextLink"]
    items, delta_link, pages = round_trip(graph, f"/users/delta?$select={SELECT}", headers=headers)
    assert pages == 3
    assert len(items) == len({u["id"] for u in items}) == 50
    assert set(items[0]) == set(SELECT.split(","))
    assert delta_link.startswith("http://localhost/v1.0/users/delta?$deltatoken=")
    # Default page size covers the demo tenant in one page.
    items, _, pages = round_trip(graph, "/users/delta")
    assert (len(items), pages) == (50, 1)
    assert "userPrincipalName" in items[0] and "accountEnabled" not in items[0]


def test_incremental_round_reports_changes_and_removals(graph: Graph):
    _, delta_link, _ = round_trip(graph, f"/users/delta?$select={SELECT}")
    items, delta_link, _ = round_trip(graph, delta_link)
    assert items == []
    adele = graph.user_id(PLAIN)
    gone = graph.user_id("alex.wilber@contoso.example")
    assert graph.patch(f"/users/{adele}", {"displayName": "Adele V."}).status_code == 204
    assert graph.patch(f"/users/{adele}", {"jobTitle": "Head of Retail"}).status_code == 204
    assert graph.delete(f"/users/{gone}").status_code == 204
    store = graph.app.extensions["emulator.store"]
    with graph.app.app_context(), store.transaction() as conn:
        created = directory.create_user(conn, graph.tenant_id, {"displayName": "New Person",
                                                                 "userPrincipalName": "new.person@contoso.example",
                                                                 "accountEnabled": True})
        directory.delete_user(conn, graph.tenant_id, graph.user_id("ben.walters@contoso.example"), permanent=True)
    items, next_delta, _ = round_trip(graph, delta_link)
    by_id = {i["id"]: i for i in items}
    assert len(items) == len(by_id) == 4
    assert by_id[adele]["displayName"] == "Adele V."
    assert set(by_id[adele]) == set(SELECT.split(","))
    assert by_id[gone] == {"id": gone, "@removed": {"reason": "changed"}}
    assert by_id[created["id"]]["userPrincipalName"] == "new.person@contoso.example"
    assert [i["@removed"]["reason"] for i in items if "@removed" in i].count("deleted") == 1
    assert round_trip(graph, next_delta)[0] == []


def test_incremental_round_pages(graph: Graph):
    _, delta_link, _ = round_trip(graph, "/users/delta?$select=id,jobTitle")
    ids = [r[0] for r in graph.conn.execute("SELECT id FROM users ORDER BY seq LIMIT 30")]
    for uid in ids:
        assert graph.patch(f"/users/{uid}", {"jobTitle": "Changed"}).status_code == 204
    items, _, pages = round_trip(graph, delta_link, headers={"Prefer": "odata.maxpagesize=7"})
    assert pages == 5
    assert sorted(i["id"] for i in items) == sorted(ids)
    assert all(i["jobTitle"] == "Changed" for i in items)


def test_latest_token_returns_only_a_delta_link(graph: Graph):
    body = graph.get("/users/delta?$deltatoken=latest&$select=id,displayName").get_json()
    assert body["value"] == []
    assert "@odata.nextLink" not in body
    uid = graph.user_id(PLAIN)
    graph.patch(f"/users/{uid}", {"displayName": "Later"})
    items, _, _ = round_trip(graph, body["@odata.deltaLink"])
    assert items == [{"id": uid, "displayName": "Later"}]


def test_groups_delta_members(graph: Graph):
    gid = graph.group_id("VPN Users")
    first, delta_link, _ = round_trip(graph, "/groups/delta?$select=displayName,members",
                                      headers={"Prefer": "odata.maxpagesize=999"})
    vpn = next(g for g in first if g["id"] == gid)
    assert vpn["displayName"] == "VPN Users"
    assert len(vpn["members@delta"]) == 4
    assert vpn["members@delta"][0]["@odata.type"] == "#microsoft.graph.user"
    adele = graph.user_id(PLAIN)
    lee = graph.user_id("lee.gu@contoso.example")
    assert graph.delete(f"/groups/{gid}/members/{adele}/$ref").status_code == 204
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{lee}"}
    assert graph.post(f"/groups/{gid}/members/$ref", ref).status_code == 204
    items, _, _ = round_trip(graph, delta_link)
    assert [i["id"] for i in items] == [gid]
    assert sorted(items[0]["members@delta"], key=lambda m: m["id"]) == sorted([
        {"@odata.type": "#microsoft.graph.user", "id": adele, "@removed": {"reason": "deleted"}},
        {"@odata.type": "#microsoft.graph.user", "id": lee}], key=lambda m: m["id"])


def test_groups_delta_without_members_ignores_membership(graph: Graph):
    _, delta_link, _ = round_trip(graph, "/groups/delta?$select=displayName")
    gid = graph.group_id("VPN Users")
    graph.delete(f"/groups/{gid}/members/{graph.user_id(PLAIN)}/$ref")
    assert round_trip(graph, delta_link)[0] == []
    graph.delete(f"/groups/{gid}")
    assert round_trip(graph, delta_link)[0] == [{"id": gid, "@removed": {"reason": "changed"}}]


def test_expired_epoch_gives_410_with_location(graph: Graph):
    first = graph.get("/users/delta?$select=id,displayName", headers={"Prefer": "odata.maxpagesize=10"}).get_json()
    _, delta_link, _ = round_trip(graph, "/users/delta?$select=id,displayName")
    with graph.app.app_context():
        graph.app.extensions["emulator.settings"].set("delta_epoch", 1)
    for url in (delta_link, first["@odata.nextLink"]):
        resp = graph.get(url)
        assert_error(resp, 410, "syncStateNotFound")
        location = resp.headers["Location"]
        assert location.startswith("http://localhost/v1.0/users/delta")
        assert parse_qs(urlsplit(location).query) == {"$select": ["id,displayName"]}
    items, fresh_link, _ = round_trip(graph, resp.headers["Location"])
    assert len(items) == 50
    assert round_trip(graph, fresh_link)[0] == []


def test_old_token_expires_after_seven_days(graph: Graph):
    _, delta_link, _ = round_trip(graph, "/users/delta")
    with graph.app.app_context():
        graph.app.extensions["emulator.settings"].set("clock_offset", 8 * 24 * 3600)
        token = graph.token()  # minted on the shifted clock
        assert clock.offset() > 0
    assert_error(graph.get(delta_link, token=token), 410, "syncStateNotFound")


def test_bad_tokens_and_options(graph: Graph):
    assert_error(graph.get("/users/delta?$deltatoken=nonsense"), 400, "Request_BadRequest")
    _, groups_link, _ = round_trip(graph, "/groups/delta")
    token = parse_qs(urlsplit(groups_link).query)["$deltatoken"][0]
    assert_error(graph.get(f"/users/delta?$deltatoken={token}"), 400, "Request_BadRequest")
    assert_error(graph.get("/users/delta?$top=5"), 400, "Request_UnsupportedQuery")
    assert_error(graph.get("/users/delta", token=graph.token(scopes="Group.Read.All")), 403,
                 "Authorization_RequestDenied")


def test_groups_delta_filtered_by_id(graph: Graph):
    vpn = graph.group_id("VPN Users")
    legal = graph.group_id("Legal")
    url = f"/groups/delta?$filter=id eq '{vpn}' or id eq '{legal}'&$select=displayName,members"
    items, delta_link, _ = round_trip(graph, url)
    assert sorted(i["id"] for i in items) == sorted([vpn, legal])
    retail = graph.group_id("Retail")
    adele = graph.user_id(PLAIN)
    graph.delete(f"/groups/{vpn}/members/{adele}/$ref")
    graph.delete(f"/groups/{retail}/members/{adele}/$ref")
    items, _, _ = round_trip(graph, delta_link)
    assert [i["id"] for i in items] == [vpn]
    with graph.app.app_context():
        graph.app.extensions["emulator.settings"].set("delta_epoch", 5)
    resp = graph.get(delta_link)
    assert resp.status_code == 410
    items, _, _ = round_trip(graph, resp.headers["Location"])
    assert sorted(i["id"] for i in items) == sorted([vpn, legal])
    assert_error(graph.get("/groups/delta?$filter=displayName eq 'x'"), 400, "Request_UnsupportedQuery")
    many = " or ".join(f"id eq '{n:08d}-0000-0000-0000-000000000000'" for n in range(51))
    assert_error(graph.get(f"/groups/delta?$filter={many}"), 400, "Request_UnsupportedQuery")
