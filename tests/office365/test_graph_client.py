"""GraphClient against a scripted local server: paging, retries, deadline, 401 refresh, errors, batching."""

from __future__ import annotations

import email.utils
import logging
import socket
import time
import uuid

import pytest
from werkzeug.wrappers import Request

from office365.errors import (
    ALREADY_MEMBER_MESSAGE,
    AlreadyMember,
    GraphError,
    GraphUnavailable,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ReauthorizationRequired,
    Throttled,
)
from office365.graph import (
    BatchRequest,
    GraphClient,
    RetryPolicy,
    StaticTokenSource,
    Timeouts,
    needs_eventual_consistency,
)
from tests.office365.fakes import FAST, ScriptedGraph, Sleeps, graph_error, graph_json, no_content


def users(n: int, start: int = 0) -> list[dict]:
    return [{"id": str(uuid.UUID(int=start + i)), "displayName": f"User {start + i}"} for i in range(n)]


# -- paging ---------------------------------------------------------------------------------------------------


def test_paging_follows_next_links_through_empty_pages(graph: ScriptedGraph, make_client) -> None:
    base = graph.base_url
    graph.script(
        graph_json({"value": users(2), "@odata.nextLink": f"{base}/users?$top=2&$skiptoken=A"}),
        graph_json({"value": [], "@odata.nextLink": f"{base}/users?$top=2&$skiptoken=B"}),
        graph_json({"value": users(1, start=2)}),
    )
    client = make_client()
    items = list(client.iter_items("/users", params={"$select": "id,displayName", "$top": 2}))
    assert [i["displayName"] for i in items] == ["User 0", "User 1", "User 2"]
    assert [s.args.get("$skiptoken") for s in graph.seen] == [None, "A", "B"]
    assert graph.seen[0].args == {"$select": "id,displayName", "$top": "2"}
    assert graph.seen[2].args == {"$top": "2", "$skiptoken": "B"}  # the nextLink as given, no params re-added


def test_paging_is_lazy_one_page_at_a_time(graph: ScriptedGraph, make_client) -> None:
    base = graph.base_url
    graph.script(
        graph_json({"value": users(3), "@odata.nextLink": f"{base}/users?$skiptoken=A"}),
        graph_json({"value": users(3, start=3)}),
    )
    pages = make_client().iter_pages("/users")
    first = next(pages)
    assert len(first.items) == 3 and len(graph.seen) == 1
    second = next(pages)
    assert second.next_link is None and len(graph.seen) == 2


def test_consistency_level_sent_on_every_page_of_a_search(graph: ScriptedGraph, make_client) -> None:
    base = graph.base_url
    graph.script(
        graph_json({"value": users(1), "@odata.count": 2,
                    "@odata.nextLink": f"{base}/users?$search=%22displayName:ann%22&$skiptoken=A"}),
        graph_json({"value": users(1, start=1)}),
    )
    client = make_client()
    items = list(client.iter_items("/users", params={"$search": '"displayName:ann"', "$count": "true"}))
    assert len(items) == 2
    assert [s.headers.get("Consistencylevel") for s in graph.seen] == ["eventual", "eventual"]


def test_plain_queries_do_not_send_consistency_level(graph: ScriptedGraph, make_client) -> None:
    graph.script(graph_json({"value": []}))
    make_client().get_page("/users", params={"$filter": "startswith(displayName,'not ne endswith(')"})
    assert "Consistencylevel" not in graph.seen[0].headers


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("$filter=endsWith(mail,'@contoso.com')&$count=true", True),
        ("$filter=displayName ne 'x'", True),
        ("$filter=not(startswith(displayName,'a'))", True),
        ("$search=%22displayName:ann%22", True),
        ("$filter=displayName eq 'not ne endsWith('", False),
        ("$filter=startswith(displayName,'a')", False),
    ],
)
def test_needs_eventual_consistency(query: str, expected: bool) -> None:
    assert needs_eventual_consistency("https://g/v1.0/users?" + query) is expected
    assert needs_eventual_consistency("https://g/v1.0/groups/x/members/$count") is True


def test_next_link_to_another_host_is_refused(graph: ScriptedGraph, make_client) -> None:
    graph.script(graph_json({"value": users(1), "@odata.nextLink": "https://evil.example/v1.0/users?$skiptoken=A"}))
    pages = make_client().iter_pages("/users")
    next(pages)
    with pytest.raises(ValueError, match="outside"):
        next(pages)
    assert len(graph.seen) == 1


# -- retries ------------------------------------------------------------------------------------------------


def test_429_honours_retry_after(graph: ScriptedGraph, make_client, sleeps: Sleeps) -> None:
    graph.script(
        graph_error(429, "TooManyRequests", "Too many requests.", {"Retry-After": "0.07"}),
        graph_error(429, "TooManyRequests", "Too many requests.", {"Retry-After": "0.03"}),
        graph_json({"value": users(1)}),
    )
    page = make_client().get_page("/users")
    assert len(page.items) == 1
    assert sleeps.waits == [0.07, 0.03]
    assert len(graph.seen) == 3


def test_retry_after_is_capped(graph: ScriptedGraph, make_client, sleeps: Sleeps) -> None:
    graph.script(graph_error(429, "TooManyRequests", "Slow down.", {"Retry-After": "3600"}), graph_json({"value": []}))
    make_client().get_page("/users")
    assert sleeps.waits == [FAST.retry_after_cap]


def test_503_without_retry_after_uses_capped_exponential_backoff(graph, make_client, sleeps: Sleeps) -> None:
    graph.script(*[graph_error(503, "serviceNotAvailable", "Unavailable.") for _ in range(4)],
                 graph_json({"value": []}))
    make_client().get_page("/users")
    assert len(sleeps.waits) == 4
    for attempt, wait in enumerate(sleeps.waits, start=1):
        ceiling = min(FAST.backoff_cap, FAST.backoff_base * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling


def test_backoff_has_jitter() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=8.0)
    waits = {round(policy.backoff(3), 6) for _ in range(50)}
    assert len(waits) > 10 and all(2.0 <= w <= 4.0 for w in waits)
    assert all(4.0 <= policy.backoff(10) <= 8.0 for _ in range(20))


def test_throttled_after_retries_exhausted(graph: ScriptedGraph, make_client) -> None:
    graph.default = lambda r: graph_error(429, "TooManyRequests", "Too many requests.", {"Retry-After": "0.01"})
    with pytest.raises(Throttled) as info:
        make_client().get_page("/users")
    err = info.value
    assert err.status == 429 and err.code == "TooManyRequests" and err.request_id
    assert len(graph.seen) == FAST.max_attempts
    assert "throttling" in str(err) and "try again" in str(err)


def test_deadline_bounds_the_whole_call(graph: ScriptedGraph, make_client) -> None:
    graph.default = lambda r: graph_error(503, "serviceNotAvailable", "Busy.", {"Retry-After": "0.15"})
    policy = RetryPolicy(max_attempts=100, backoff_base=0.01, retry_after_cap=1.0, deadline=0.5)
    started = time.monotonic()
    with pytest.raises(GraphUnavailable) as info:
        make_client(retry=policy).get_page("/users")
    elapsed = time.monotonic() - started
    assert elapsed < 0.8
    assert 2 <= len(graph.seen) <= 4
    assert info.value.status == 503


def test_500_is_not_retried_and_is_reported(graph: ScriptedGraph, make_client) -> None:
    graph.script(graph_error(500, "generalException", "Something broke."))
    with pytest.raises(GraphUnavailable) as info:
        make_client().get_page("/users")
    assert len(graph.seen) == 1
    assert "generalException" in str(info.value) and info.value.request_id in str(info.value)


def test_read_timeout_on_get_is_retried(graph: ScriptedGraph, make_client) -> None:
    def slow(request: Request):
        time.sleep(0.6)
        return graph_json({"value": []})

    graph.script(slow, graph_json({"value": users(1)}))
    page = make_client(timeouts=Timeouts(connect=1.0, read=0.3)).get_page("/users")
    assert len(page.items) == 1 and len(graph.seen) == 2


def test_read_timeout_on_post_is_not_resent(graph: ScriptedGraph, make_client) -> None:
    def slow(request: Request):
        time.sleep(0.6)
        return no_content()

    graph.script(slow)
    client = make_client(timeouts=Timeouts(connect=1.0, read=0.3))
    with pytest.raises(GraphUnavailable, match="may or may not have been applied"):
        client.request("POST", "/groups", json_body={"displayName": "x"})
    time.sleep(0.4)
    assert len(graph.seen) == 1


def test_dropped_connection_on_get_is_retried(graph: ScriptedGraph, make_client) -> None:
    graph.script(lambda r: None, lambda r: None, graph_json({"value": users(2)}))
    page = make_client().get_page("/users")
    assert len(page.items) == 2 and len(graph.seen) == 3


def test_dropped_connection_on_post_is_reported(graph: ScriptedGraph, make_client) -> None:
    graph.script(lambda r: None)
    with pytest.raises(GraphUnavailable, match="Check the current state"):
        make_client().request("POST", "/groups/x/members/$ref", json_body={})
    assert len(graph.seen) == 1


def test_connection_refused_is_retried_then_reported(sleeps: Sleeps) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    client = GraphClient(f"http://127.0.0.1:{port}/v1.0", StaticTokenSource("t"), retry=FAST, sleep=sleeps)
    with pytest.raises(GraphUnavailable, match="Could not reach Microsoft Graph"):
        client.request("POST", "/groups", json_body={})  # never sent, so even a POST may be retried
    assert client.requests_sent == FAST.max_attempts


# -- tokens ---------------------------------------------------------------------------------------------------


def test_401_refreshes_the_token_once(graph: ScriptedGraph, make_client) -> None:
    graph.script(
        graph_error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
        graph_json({"value": []}),
    )
    tokens = StaticTokenSource("old", refresh=lambda: "new")
    make_client(tokens=tokens).get_page("/users")
    assert [s.headers["Authorization"] for s in graph.seen] == ["Bearer old", "Bearer new"]


def test_401_twice_means_reauthorization(graph: ScriptedGraph, make_client) -> None:
    graph.default = lambda r: graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
    with pytest.raises(ReauthorizationRequired, match="Re-Authorize"):
        make_client(tokens=StaticTokenSource("a", refresh=lambda: "b")).get_page("/users")
    assert len(graph.seen) == 2


def test_refused_refresh_sends_nothing(graph: ScriptedGraph, make_client) -> None:
    class Revoked:
        granted_scopes = frozenset({"User.Read.All"})

        def access_token(self, *, force_refresh: bool = False) -> str:
            raise ReauthorizationRequired("AADSTS50173: the grant was revoked. Re-Authorize the datasource.")

    with pytest.raises(ReauthorizationRequired, match="AADSTS50173"):
        make_client(tokens=Revoked()).get_page("/users")
    assert graph.seen == []


def test_tokens_are_never_logged(graph: ScriptedGraph, make_client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "eyJ-very-secret-token"
    graph.script(graph_error(429, "TooManyRequests", "x", {"Retry-After": "0"}), lambda r: None,
                 graph_json({"value": []}))
    client = make_client(tokens=StaticTokenSource(secret))
    client.get_page("/users")
    assert caplog.records  # the retries were logged...
    assert all(secret not in r.getMessage() for r in caplog.records)  # ...without the token
    assert secret not in repr(client.tokens)


# -- ids and errors -----------------------------------------------------------------------------------------


def test_client_request_id_per_attempt_and_request_id_kept(graph: ScriptedGraph, make_client) -> None:
    graph.script(graph_error(503, "serviceNotAvailable", "x", {"Retry-After": "0"}),
                 graph_json({"value": []}, headers={"request-id": "rid-42"}))
    client = make_client()
    page = client.get_page("/users")
    ids = [s.headers["Client-Request-Id"] for s in graph.seen]
    assert len(set(ids)) == 2 and all(uuid.UUID(i).version == 4 for i in ids)
    assert page.request_id == "rid-42" and client.last_request_id == "rid-42"
    assert client.last_client_request_id == ids[-1]


@pytest.mark.parametrize(
    ("status", "code", "message", "cls"),
    [
        (404, "Request_ResourceNotFound", "Resource 'x' does not exist or one of its queried reference-property "
                                          "objects are not present.", NotFound),
        (403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", PermissionDenied),
        (400, "Request_BadRequest", ALREADY_MEMBER_MESSAGE, AlreadyMember),
        (400, "Request_UnsupportedQuery", "Invalid page size specified: '1000'.", InvalidRequest),
        (409, "Conflict", "Conflict.", GraphError),
    ],
)
def test_errors_are_typed(graph: ScriptedGraph, make_client, status, code, message, cls) -> None:
    graph.script(graph_error(status, code, message))
    with pytest.raises(cls) as info:
        make_client().request("POST", "/groups/g/members/$ref", json_body={})
    err = info.value
    assert type(err) is cls
    assert (err.status, err.code, err.graph_message) == (status, code, message)
    assert err.request_id and err.request_id in str(err)
    assert len(graph.seen) == 1


# -- batching -----------------------------------------------------------------------------------------------


def batch_answer(handler):
    """A $batch endpoint: `handler(item) -> (status, headers, body)` per item."""

    def answer(request: Request):
        items = request.get_json()["requests"]
        return graph_json({"responses": [
            {"id": it["id"], **dict(zip(("status", "headers", "body"), handler(it), strict=True))}
            for it in reversed(items)  # Graph may answer in any order
        ]})

    return answer


def test_batch_sends_twenty_per_request_with_per_item_results(graph: ScriptedGraph, make_client) -> None:
    def handler(item):
        if item["url"].endswith("/bad"):
            return 404, {}, {"error": {"code": "Request_ResourceNotFound", "message": "Resource 'bad' does not exist."}}
        return 200, {"Content-Type": "application/json"}, {"echo": item["url"]}

    graph.default = batch_answer(handler)
    items = [BatchRequest(str(i), "GET", f"/users/{'bad' if i == 7 else i}") for i in range(45)]
    results = make_client().batch(items)
    assert [len(s.body["requests"]) for s in graph.seen] == [20, 20, 5]
    assert all(s.path == "/v1.0/$batch" and s.method == "POST" for s in graph.seen)
    assert [r.id for r in results] == [str(i) for i in range(45)]
    assert isinstance(results[7].error, NotFound)
    assert [r.body["echo"] for r in results if r.ok][:2] == ["/users/0", "/users/1"]
    assert sum(r.ok for r in results) == 44


def test_batch_retries_items_answering_429_after_their_retry_after(graph, make_client, sleeps: Sleeps) -> None:
    throttled_once: set[str] = set()

    def handler(item):
        if int(item["id"]) % 3 == 0 and item["id"] not in throttled_once:
            throttled_once.add(item["id"])
            return 429, {"Retry-After": "0.05"}, {"error": {"code": "TooManyRequests", "message": "Slow down."}}
        return 204, {}, None

    graph.default = batch_answer(handler)
    results = make_client().batch([BatchRequest(str(i), "DELETE", f"/x/{i}") for i in range(10)])
    assert all(r.ok and r.status == 204 for r in results)
    assert [len(s.body["requests"]) for s in graph.seen] == [10, 4]
    assert sorted(it["id"] for it in graph.seen[1].body["requests"]) == ["0", "3", "6", "9"]
    assert sleeps.waits == [0.05]


def test_batch_item_throttled_for_good_gets_typed_error(graph: ScriptedGraph, make_client) -> None:
    def handler(item):
        if item["id"] == "1":
            return 429, {"Retry-After": "0.01"}, {"error": {"code": "TooManyRequests", "message": "Slow down."}}
        return 200, {}, {"ok": True}

    graph.default = batch_answer(handler)
    results = make_client().batch([BatchRequest("0", "GET", "/a"), BatchRequest("1", "GET", "/b")])
    assert results[0].ok
    assert isinstance(results[1].error, Throttled) and results[1].status == 429
    assert len(graph.seen) == FAST.max_attempts


def test_retry_after_as_http_date_and_garbage() -> None:
    policy = RetryPolicy(retry_after_cap=60)
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8.0 <= policy.retry_after(in_ten) <= 10.0
    assert policy.retry_after(email.utils.formatdate(time.time() - 100, usegmt=True)) == 0.0
    assert policy.retry_after("soon") is None and policy.retry_after(None) is None
    assert policy.retry_after("7") == 7.0 and policy.retry_after("600") == 60.0
