"""Operations against the scripted server: refusals before sending, escaping, nickname rules, bulk fallback."""

from __future__ import annotations

import uuid

import pytest

from office365 import bulk, odata, operations
from office365.errors import (
    ALREADY_MEMBER_MESSAGE,
    FieldError,
    NoSeatsLeft,
    UsageLocationRequired,
    WriteNotAllowed,
)
from office365.graph import StaticTokenSource
from office365.operations import GraphAccess, NewGroup
from tests.office365.fakes import ScriptedGraph, graph_error, graph_json, no_content

ALL_WRITE = frozenset({
    "https://graph.microsoft.com/User.Read.All", "https://graph.microsoft.com/Group.ReadWrite.All",
    "https://graph.microsoft.com/GroupMember.ReadWrite.All", "https://graph.microsoft.com/Organization.Read.All",
    "https://graph.microsoft.com/LicenseAssignment.ReadWrite.All",
})
READ_ONLY = frozenset({"User.Read.All", "Group.Read.All", "Organization.Read.All"})


def gid() -> str:
    return str(uuid.uuid4())


def access(make_client, scopes=ALL_WRITE, can_write=True) -> GraphAccess:
    return GraphAccess(make_client(tokens=StaticTokenSource("tok", scopes)), can_write=can_write)


def test_registry_has_the_ten_seed_operations() -> None:
    labels = {op.label: op.kind for op in operations.OPERATIONS.values()}
    assert labels == {
        "User List": "read", "Group List": "read", "Find Users": "read", "Find Groups": "read",
        "Create Group": "write", "Add User to Group": "write", "Remove User From Group": "write",
        "Licence Plan List": "read", "Assign Licence to User": "write", "Remove Licence from User": "write",
    }
    assert {op.kind for op in operations.BULK_OPERATIONS.values()} == {"write"}
    assert all(op.scopes for op in operations.OPERATIONS.values())


WRITES = [
    ("create_group", lambda a: operations.create_group(a, NewGroup("Finance"))),
    ("add_user_to_group", lambda a: operations.add_user_to_group(a, gid(), gid())),
    ("remove_user_from_group", lambda a: operations.remove_user_from_group(a, gid(), gid())),
    ("assign_licence", lambda a: operations.assign_licence(a, gid(), gid())),
    ("remove_licence", lambda a: operations.remove_licence(a, gid(), gid())),
    ("add_users_to_group", lambda a: bulk.add_users_to_group(a, gid(), [gid()])),
    ("assign_licence_to_group_members", lambda a: bulk.assign_licence_to_group_members(a, gid(), gid())),
]


@pytest.mark.parametrize(("name", "call"), WRITES, ids=[w[0] for w in WRITES])
def test_write_on_read_only_datasource_is_refused_before_sending(graph: ScriptedGraph, make_client, name, call):
    with pytest.raises(WriteNotAllowed) as info:
        call(access(make_client, can_write=False))
    assert "read-only" in str(info.value)
    assert 'tick "Read and write users & groups"' in str(info.value) and "Re-Authorize" in str(info.value)
    assert graph.seen == []


@pytest.mark.parametrize(("name", "call"), WRITES, ids=[w[0] for w in WRITES])
def test_write_without_the_scope_is_refused_before_sending(graph: ScriptedGraph, make_client, name, call):
    with pytest.raises(WriteNotAllowed) as info:
        call(access(make_client, scopes=READ_ONLY, can_write=True))
    assert "lacks" in str(info.value) and "Re-Authorize" in str(info.value)
    assert graph.seen == []


def test_filter_literals_are_escaped(graph: ScriptedGraph, make_client) -> None:
    graph.script(graph_json({"value": []}))
    evil = "O'Neil') or startswith(displayName,'"
    operations.find_users(access(make_client), evil)
    literal = "'O''Neil'') or startswith(displayName,'''"
    assert graph.seen[0].args["$filter"] == (
        f"startswith(displayName,{literal}) or startswith(mail,{literal}) "
        f"or startswith(userPrincipalName,{literal})"
    )


def test_query_characters_survive_encoding(graph: ScriptedGraph, make_client) -> None:
    graph.script(graph_json({"value": []}))
    text = "a#EXT#&$top=1+b %"
    operations.find_groups(access(make_client), text, with_member_count=False)
    assert odata.string_literal(text) in graph.seen[0].args["$filter"]
    assert "$top" in graph.seen[0].args and graph.seen[0].args["$top"] == "25"


def test_search_mode_escapes_quotes_and_sends_consistency_level(graph: ScriptedGraph, make_client) -> None:
    graph.script(graph_json({"value": [], "@odata.count": 0}))
    operations.find_users(access(make_client), 'say "hi" \\o/', mode="search")
    seen = graph.seen[0]
    assert seen.args["$search"] == (
        '"displayName:say \\"hi\\" \\\\o/" OR "mail:say \\"hi\\" \\\\o/" OR "userPrincipalName:say \\"hi\\" \\\\o/"'
    )
    assert seen.headers["Consistencylevel"] == "eventual"


@pytest.mark.parametrize("bad", ["../users/x", "abc", "", "00000000-0000-0000-0000-00000000000g"])
def test_ids_that_are_not_object_ids_never_reach_a_url(graph: ScriptedGraph, make_client, bad: str) -> None:
    with pytest.raises(FieldError) as info:
        operations.add_user_to_group(access(make_client), gid(), bad)
    assert info.value.field == "user_id"
    assert graph.seen == []


def test_remove_always_uses_the_ref_form(graph: ScriptedGraph, make_client) -> None:
    graph.script(no_content())
    g, u = gid(), gid()
    result = operations.remove_user_from_group(access(make_client), g, u)
    assert result.outcome == "removed"
    assert (graph.seen[0].method, graph.seen[0].path) == ("DELETE", f"/v1.0/groups/{g}/members/{u}/$ref")


def test_add_reports_already_member_as_an_outcome(graph: ScriptedGraph, make_client) -> None:
    graph.script(graph_error(400, "Request_BadRequest", ALREADY_MEMBER_MESSAGE))
    result = operations.add_user_to_group(access(make_client), gid(), gid())
    assert result.outcome == "already_member" and result.request_id


@pytest.mark.parametrize(
    ("nickname", "fragment"),
    [("fin ance", "space"), ("fin.ance", "'.'"), ("a@b", "'@'"), ("équipe", "'é'"), ("x" * 65, "longer than 64"),
     ("a(b)", "'('")],
)
def test_mail_nickname_rules(nickname: str, fragment: str) -> None:
    with pytest.raises(FieldError) as info:
        operations.validate_mail_nickname(nickname, "Équipe R&D (Paris)")
    assert info.value.field == "mail_nickname" and fragment in str(info.value)
    assert info.value.suggestion == "equipe-r-d-paris"
    operations.validate_mail_nickname(info.value.suggestion)  # the suggestion itself is valid


def test_nickname_suggestions() -> None:
    assert operations.suggest_mail_nickname("Sales & Marketing 2027") == "sales-marketing-2027"
    assert operations.suggest_mail_nickname("!!!") == "group"
    assert len(operations.suggest_mail_nickname("Very long name " * 10)) <= 64


def test_bulk_add_falls_back_per_user_when_a_chunk_is_refused(graph: ScriptedGraph, make_client) -> None:
    group = gid()
    users = [gid() for _ in range(25)]
    already, unknown = users[21], users[23]

    def batch(request):
        answers = []
        for item in request.get_json()["requests"]:
            uid = item["body"]["@odata.id"].rsplit("/", 1)[-1]
            if uid == already:
                answers.append({"id": item["id"], "status": 400, "body": {"error": {
                    "code": "Request_BadRequest", "message": ALREADY_MEMBER_MESSAGE}}})
            elif uid == unknown:
                answers.append({"id": item["id"], "status": 404, "body": {"error": {
                    "code": "Request_ResourceNotFound", "message": f"Resource '{uid}' does not exist or one of its "
                    "queried reference-property objects are not present."}}})
            else:
                answers.append({"id": item["id"], "status": 204})
        return graph_json({"responses": answers})

    graph.script(
        no_content(),  # first 20: one PATCH
        graph_error(404, "Request_ResourceNotFound", f"Resource '{unknown}' does not exist or one of its queried "
                    "reference-property objects are not present."),  # last 5: PATCH refused...
        batch,  # ...then resolved per user
    )
    result = bulk.add_users_to_group(access(make_client), group, [*users, "not-an-id", users[0]])
    outcomes = {i.id: i.outcome for i in result.items}
    assert outcomes[already] == "already_member" and outcomes[unknown] == "not_found"
    assert outcomes["not-an-id"] == "invalid"
    assert sum(o == "added" for o in outcomes.values()) == 23
    assert len(result.items) == 26  # the duplicate was sent once
    assert result.graph_requests == 3
    patch = graph.seen[0]
    assert patch.method == "PATCH" and patch.path == f"/v1.0/groups/{group}"
    assert len(patch.body["members@odata.bind"]) == 20
    assert patch.body["members@odata.bind"][0] == f"{graph.base_url}/directoryObjects/{users[0]}"
    assert [len(s.body["requests"]) for s in graph.seen[2:]] == [5]


def test_a_foreign_cursor_is_refused_before_sending(graph: ScriptedGraph, make_client) -> None:
    for cursor in ("https://evil.example/v1.0/users?$skiptoken=A", f"{graph.base_url}x/users?$skiptoken=A",
                   f"{graph.base_url}/groups?$skiptoken=A"):
        with pytest.raises(FieldError) as info:
            operations.list_users(access(make_client), cursor=cursor)
        assert info.value.field == "cursor"
    assert graph.seen == []


def _licence_script(graph: ScriptedGraph, user: str, sku: str, answer) -> None:
    graph.script(
        graph_json({"id": user, "userPrincipalName": "a@contoso.example", "usageLocation": "NL",
                    "assignedLicenses": []}),
        graph_json({"value": [{"skuId": sku, "skuPartNumber": "ENTERPRISEPACK", "consumedUnits": 3,
                               "prepaidUnits": {"enabled": 5}, "servicePlans": []}]}),
        answer,
    )


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("Subscription with SKU {sku} does not have any available licenses.", NoSeatsLeft),
        ("License assignment cannot be done for user with invalid usage location.", UsageLocationRequired),
    ],
)
def test_licence_refusals_from_graph_are_typed(graph: ScriptedGraph, make_client, message: str, error) -> None:
    user, sku = gid(), gid()
    _licence_script(graph, user, sku, graph_error(400, "Request_BadRequest", message.format(sku=sku)))
    with pytest.raises(error) as info:
        operations.assign_licence(access(make_client), user, sku)
    assert info.value.request_id
    post = graph.seen[2]
    assert (post.method, post.path) == ("POST", f"/v1.0/users/{user}/assignLicense")
    assert post.body == {"addLicenses": [{"skuId": sku, "disabledPlans": []}], "removeLicenses": []}
