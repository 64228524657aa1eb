"""Unit tests for the OData query options of the Graph emulator."""

from __future__ import annotations

import json
import sqlite3

import pytest

from emulator.graph import odata
from emulator.graph.errors import GraphError
from emulator.store import SCHEMA

T = "t1"
SKU = "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46"


@pytest.fixture()
def conn() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    people = [("u1", "Ann Smith", "ann@c.example", "Sales", 1, "US"),
              ("u2", "Annette Jones", "annette@c.example", "Sales", 1, None),
              ("u3", "Joanne O'Neil", "joanne@c.example", "HR", 0, "GB"),
              ("u4", "Bob 100% _Under", "bob@c.example", "IT", 1, "DE")]
    for uid, name, upn, dept, enabled, loc in people:
        db.execute("INSERT INTO users (id, tenant_id, user_principal_name, display_name, mail, department, "
                   "account_enabled, usage_location, created, extra) VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (uid, T, upn, name, upn, dept, enabled, loc, "2024-01-15T09:00:00Z",
                    json.dumps({"mailNickname": upn.split("@")[0]})))
    db.execute("INSERT INTO user_licenses (user_id, sku_id) VALUES ('u2', ?)", (SKU,))
    return db


def run(conn: sqlite3.Connection, text: str, advanced: bool = False) -> list[str]:
    where, params = odata.filter_sql(text, odata.USER_SCHEMA, advanced)
    sql = f"SELECT id FROM users WHERE tenant_id = ? AND {where} ORDER BY seq"
    return [r[0] for r in conn.execute(sql, [T, *params])]


def error_of(fn, *args) -> GraphError:
    with pytest.raises(GraphError) as info:
        fn(*args)
    return info.value


def test_eq_is_case_insensitive(conn):
    assert run(conn, "userPrincipalName eq 'ANN@c.example'") == ["u1"]


def test_startswith_or_and_parentheses(conn):
    assert run(conn, "startswith(displayName,'ann') or startswith(mail,'joa')") == ["u1", "u2", "u3"]
    assert run(conn, "(startswith(displayName,'ann') or startswith(mail,'joa')) and department eq 'Sales'") == [
        "u1", "u2"]
    assert run(conn, "accountEnabled eq false") == ["u3"]


def test_doubled_quotes(conn):
    assert run(conn, "displayName eq 'Joanne O''Neil'") == ["u3"]
    assert run(conn, "startswith(displayName,'Joanne O''')") == ["u3"]


def test_injection_does_not_widen(conn):
    # The classic attempt: close the quote and add an always-true clause. Doubled by a correct client it is
    # just text and matches nothing; only an unescaped client would widen the query (which is why the
    # gateway doubles quotes), and a lone quote is a syntax error, never a wider match.
    evil = "x') or startswith(displayName,'"
    assert run(conn, "startswith(displayName,'" + evil.replace("'", "''") + "')") == []
    assert run(conn, "startswith(displayName,'" + evil + "')") == ["u1", "u2", "u3", "u4"]
    assert error_of(run, conn, "displayName eq 'O'Neil'").status == 400


def test_like_wildcards_are_literal(conn):
    assert run(conn, "startswith(displayName,'Bob 100%')") == ["u4"]
    assert run(conn, "startswith(displayName,'%')") == []
    assert run(conn, "startswith(displayName,'_')") == []


def test_assigned_licenses_any(conn):
    assert run(conn, f"assignedLicenses/any(x:x/skuId eq {SKU})") == ["u2"]
    assert run(conn, f"assignedLicenses/any(x:x/skuId eq '{SKU.upper()}')") == ["u2"]


def test_in_operator_and_extra_properties(conn):
    assert run(conn, "id in ('u1', 'u3')") == ["u1", "u3"]
    assert run(conn, "mailNickname eq 'bob'") == ["u4"]
    assert run(conn, "usageLocation eq null") == ["u2"]


def test_advanced_operators_need_advanced_params(conn):
    for text, op in (("endswith(mail,'c.example')", "endsWith"), ("department ne 'Sales'", "ne"),
                     ("not(department eq 'Sales')", "not")):
        err = error_of(run, conn, text)
        assert (err.status, err.code) == (400, "Request_UnsupportedQuery")
        assert err.message.startswith(f"Operator '{op}' is not supported because the required parameters might "
                                      "be missing. Try adding $count=true query parameter and "
                                      "ConsistencyLevel:eventual header.")
    assert run(conn, "endswith(mail,'c.example')", advanced=True) == ["u1", "u2", "u3", "u4"]
    assert run(conn, "department ne 'Sales'", advanced=True) == ["u3", "u4"]
    assert run(conn, "not(department eq 'Sales')", advanced=True) == ["u3", "u4"]


def test_unknown_property_message(conn):
    err = error_of(run, conn, "aboutMe eq 'x'")
    assert (err.status, err.code, err.message) == (
        400, "Request_UnsupportedQuery",
        "Unsupported or invalid query filter clause specified for property 'aboutMe' of resource 'User'.")


def test_type_mismatch_and_syntax_errors(conn):
    err = error_of(run, conn, "accountEnabled eq 'yes'")
    assert err.status == 400 and "incompatible types" in err.message
    for bad in ("displayName eq", "startswith(displayName 'a')", "displayName eq 'unterminated",
                "(displayName eq 'a'", "displayName foo 'a'", ""):
        assert error_of(run, conn, bad).status == 400


def test_search_tokens():
    assert odata.search_tokens("AnnSmith hello-world 42abc") >= {"ann", "smith", "hello", "world", "helloworld",
                                                                   "42", "abc"}


@pytest.mark.parametrize(("query", "expected"), [
    ('"displayName:ann"', ["u1", "u2"]),
    ('"displayName:ann" AND "mail:annette"', ["u2"]),
    ('"displayName:jones" OR "displayName:neil"', ["u2", "u3"]),
    ('"displayName:smith ann"', ["u1"]),
    ('("displayName:bob" OR "displayName:ann") AND "department:sales"', ["u1", "u2"]),
    ('"displayName:oann"', []),
])
def test_search_matching(conn, query, expected):
    node = odata.parse_search(query, odata.USER_SCHEMA)
    rows = [("u1", "Ann Smith", "ann@c.example", "Sales"), ("u2", "Annette Jones", "annette@c.example", "Sales"),
            ("u3", "Joanne O'Neil", "joanne@c.example", "HR"), ("u4", "Bob Under", "bob@c.example", "IT")]
    objs = [{"id": r[0], "displayName": r[1], "mail": r[2], "department": r[3]} for r in rows]
    assert [o["id"] for o in objs if odata.search_matches(node, o)] == expected


def test_search_errors():
    err = error_of(odata.parse_search, '"aboutMe:x"', odata.USER_SCHEMA)
    assert err.code == "Request_UnsupportedQuery" and "'aboutMe'" in err.message
    assert error_of(odata.parse_search, '"displayName:x" AND', odata.USER_SCHEMA).status == 400
    assert error_of(odata.parse_search, 'displayName:x', odata.USER_SCHEMA).status == 400


def test_select_and_top():
    assert odata.parse_select("id,DisplayName, mail,id", odata.USER_SCHEMA) == ["id", "displayName", "mail"]
    assert odata.parse_select(None, odata.USER_SCHEMA) is None
    err = error_of(odata.parse_select, "id,nope", odata.USER_SCHEMA)
    assert err.message == "Could not find a property named 'nope' on type 'microsoft.graph.user'."
    assert odata.parse_top(None) == 100
    assert odata.parse_top("999") == 999
    for bad in ("0", "1000", "-1"):
        err = error_of(odata.parse_top, bad)
        assert (err.code, err.message) == (
            "Request_UnsupportedQuery", f"Invalid page size specified: '{bad}'. Must be between 1 and 999 inclusive.")
    assert error_of(odata.parse_top, "abc").status == 400


def test_tokens_round_trip():
    token = odata.encode_token({"s": 5, "k": "users"})
    assert odata.decode_token(token) == {"s": 5, "k": "users"}
    assert odata.decode_token("!!!") is None
    assert odata.decode_token(odata.encode_token([1])) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("query", ['"displayName:ann"', '"displayName:oneil"', '"displayName:o\'neil"',
                                   '"mail:annette" OR "displayName:bob"', '"displayName:100"',
                                   '"displayName:smith ann"', '"department:sa" AND "displayName:jo"'])
def test_search_prefilter_keeps_every_match(conn, query):
    node = odata.parse_search(query, odata.USER_SCHEMA)
    pre, params = odata.search_prefilter(node, odata.USER_SCHEMA)
    candidates = {r[0] for r in conn.execute(f"SELECT id FROM users WHERE {pre}", params)}
    rows = conn.execute("SELECT id, display_name, mail, department FROM users").fetchall()
    objs = [{"id": r[0], "displayName": r[1], "mail": r[2], "department": r[3]} for r in rows]
    matches = {o["id"] for o in objs if odata.search_matches(node, o)}
    assert matches <= candidates
    assert matches  # each query above matches someone
