"""Graph emulator: JSON batching (docs/microsoft.md §7)."""

from __future__ import annotations

import base64

from tests.emulator.graph_support import E5, Graph, assert_error
from tests.emulator.support import PLAIN

JSON = {"Content-Type": "application/json"}


def ref(object_id: str) -> dict:
    return {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{object_id}"}


def test_batch_dispatches_each_item(graph: Graph):
    gid = graph.group_id("VPN Users")
    lee = graph.user_id("lee.gu@contoso.example")
    adele = graph.user_id(PLAIN)
    resp = graph.post("/$batch", {"requests": [
        {"id": "1", "method": "POST", "url": f"/groups/{gid}/members/$ref", "headers": JSON, "body": ref(lee)},
        {"id": "2", "method": "POST", "url": f"/groups/{gid}/members/$ref", "headers": JSON, "body": ref(adele)},
        {"id": "3", "method": "GET", "url": '/users?$search="displayName:ann"&$select=displayName',
         "headers": {"ConsistencyLevel": "eventual"}},
        {"id": "4", "method": "GET", "url": "users/$count"},
        {"id": "5", "method": "GET", "url": f"/users/{lee}?$select=displayName"},
        {"id": "6", "method": "GET", "url": f"/groups/{gid}/members/$count",
         "headers": {"ConsistencyLevel": "eventual"}},
    ]})
    assert resp.status_code == 200
    body = resp.get_json()
    by_id = {r["id"]: r for r in body["responses"]}
    assert [r["id"] for r in body["responses"]] == ["1", "2", "3", "4", "5", "6"]
    assert by_id["1"]["status"] == 204 and "body" not in by_id["1"]
    assert by_id["2"]["status"] == 400
    assert by_id["2"]["body"]["error"]["message"] == (
        "One or more added object references already exist for the following modified properties: 'members'.")
    assert by_id["3"]["status"] == 200
    assert by_id["3"]["headers"]["Content-Type"].startswith("application/json;odata.metadata=minimal")
    assert len(by_id["3"]["body"]["value"]) == 3
    assert by_id["4"]["status"] == 400  # no ConsistencyLevel on that item
    assert by_id["5"]["body"]["displayName"] == "Lee Gu"
    assert by_id["5"]["body"]["@odata.context"].startswith("http://localhost/v1.0/$metadata#users")
    assert by_id["6"]["headers"]["Content-Type"].startswith("text/plain")
    assert base64.b64decode(by_id["6"]["body"]) == b"5"  # non-JSON bodies come base64-encoded
    assert lee in {m["id"] for m in graph.walk(f"/groups/{gid}/members")}


def test_depends_on_gives_424(graph: Graph):
    gid = graph.group_id("VPN Users")
    adele = graph.user_id(PLAIN)
    other = graph.user_id("megan.bowen@contoso.example")
    resp = graph.post("/$batch", {"requests": [
        {"id": "a", "method": "POST", "url": f"/groups/{gid}/members/$ref", "headers": JSON, "body": ref(adele)},
        {"id": "b", "method": "POST", "url": f"/users/{adele}/assignLicense", "dependsOn": ["a"], "headers": JSON,
         "body": {"addLicenses": [{"skuId": E5, "disabledPlans": []}], "removeLicenses": []}},
        {"id": "c", "method": "POST", "url": f"/groups/{gid}/members/$ref", "headers": JSON, "body": ref(other)},
        {"id": "d", "method": "GET", "url": f"/users/{other}", "dependsOn": ["c"]},
    ]})
    statuses = {r["id"]: r["status"] for r in resp.get_json()["responses"]}
    assert statuses == {"a": 400, "b": 424, "c": 204, "d": 200}
    failed = next(r for r in resp.get_json()["responses"] if r["id"] == "b")
    assert failed["body"]["error"]["code"] == "FailedDependency"
    licences = graph.get(f"/users/{adele}?$select=assignedLicenses").get_json()["assignedLicenses"]
    assert E5 not in {lic["skuId"] for lic in licences}


def test_batch_items_keep_their_own_auth_checks(graph: Graph):
    token = graph.token(scopes="User.Read.All")
    resp = graph.post("/$batch", {"requests": [
        {"id": "1", "method": "GET", "url": "/users?$top=1"},
        {"id": "2", "method": "GET", "url": "/groups?$top=1"}]}, token=token)
    statuses = {r["id"]: r["status"] for r in resp.get_json()["responses"]}
    assert statuses == {"1": 200, "2": 403}


def test_malformed_batches_are_400(graph: Graph):
    dup = graph.post("/$batch", {"requests": [{"id": "1", "method": "GET", "url": "/me"},
                                              {"id": "1", "method": "GET", "url": "/organization"}]})
    assert_error(dup, 400, "BadRequest", "Request Id '1' is used more than once in the batch.")
    many = [{"id": str(n), "method": "GET", "url": "/me"} for n in range(21)]
    assert_error(graph.post("/$batch", {"requests": many}), 400, "BadRequest")
    assert_error(graph.post("/$batch", {"requests": []}), 400, "BadRequest")
    unknown_dep = [{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["9"]}]
    assert_error(graph.post("/$batch", {"requests": unknown_dep}), 400, "BadRequest")
    absolute = [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/me"}]
    assert_error(graph.post("/$batch", {"requests": absolute}), 400, "BadRequest")
    nested = [{"id": "1", "method": "POST", "url": "/$batch", "headers": JSON, "body": {"requests": []}}]
    assert_error(graph.post("/$batch", {"requests": nested}), 400, "BadRequest")
    no_ctype = [{"id": "1", "method": "POST", "url": "/groups", "body": {"displayName": "x"}}]
    assert_error(graph.post("/$batch", {"requests": no_ctype}), 400, "BadRequest")
    assert_error(graph.client.post("/v1.0/$batch", json={"requests": many[:1]}), 401, "InvalidAuthenticationToken")


def test_twenty_items_are_accepted(graph: Graph):
    items = [{"id": str(n), "method": "GET", "url": f"/users?$top=1&$select=id&n={n}"} for n in range(20)]
    body = graph.post("/$batch", {"requests": items}).get_json()
    assert [r["status"] for r in body["responses"]] == [200] * 20
    ids = {r["headers"]["request-id"] for r in body["responses"]}
    assert len(ids) == 20
