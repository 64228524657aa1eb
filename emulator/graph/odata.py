"""OData query options for the directory: `$filter` (compiled to parameterised SQL), `$search`, `$select`,
`$top` and opaque paging tokens (docs/microsoft.md §5.0, §5.3).

User text only ever reaches SQLite as bound parameters, so no quote trick can widen a query.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from emulator.graph.errors import GraphError, bad_request, unsupported_query

ADVANCED_HINT = ("is not supported because the required parameters might be missing. Try adding $count=true "
                 "query parameter and ConsistencyLevel:eventual header. Refer to "
                 "https://aka.ms/graph-docs/advanced-queries for more information")

# ---------------------------------------------------------------------------------------------- schemas


@dataclass(frozen=True)
class Prop:
    sql: str
    kind: str = "str"  # str | bool | guid | datetime


@dataclass(frozen=True)
class Collection:
    """A multi-valued property usable in `prop/any(x: ...)`; `source` is an EXISTS body ending in WHERE."""

    source: str
    fields: dict[str, Prop]


@dataclass(frozen=True)
class Schema:
    type_name: str  # e.g. "User" (used in error messages)
    odata_type: str  # e.g. "microsoft.graph.user"
    filter_props: dict[str, Prop]
    collections: dict[str, Collection] = field(default_factory=dict)
    search_props: tuple[str, ...] = ()
    select_props: tuple[str, ...] = ()


def _extra(name: str, table: str) -> Prop:
    return Prop(f"json_extract({table}.extra, '$.{name}')")


USER_SELECT = (
    "id", "displayName", "givenName", "surname", "mail", "userPrincipalName", "jobTitle", "department",
    "mobilePhone", "officeLocation", "businessPhones", "preferredLanguage", "accountEnabled", "usageLocation",
    "assignedLicenses", "assignedPlans", "createdDateTime", "mailNickname", "otherMails", "proxyAddresses",
    "employeeId", "companyName", "city", "country", "state", "streetAddress", "postalCode", "userType",
    "onPremisesSyncEnabled", "onPremisesImmutableId", "ageGroup", "faxNumber", "passwordPolicies",
    "showInAddressList", "externalUserState", "creationType", "deletedDateTime", "identities", "imAddresses",
    "employeeType", "legalAgeGroupClassification", "consentProvidedForMinor", "isResourceAccount",
    "lastPasswordChangeDateTime", "licenseAssignmentStates", "onPremisesDistinguishedName",
    "onPremisesDomainName", "onPremisesLastSyncDateTime", "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier", "onPremisesUserPrincipalName", "preferredDataLocation",
    "securityIdentifier", "signInSessionsValidFromDateTime", "usageLocation",
)

USER_SCHEMA = Schema(
    type_name="User",
    odata_type="microsoft.graph.user",
    filter_props={
        "id": Prop("users.id", "guid"),
        "displayName": Prop("users.display_name"),
        "givenName": Prop("users.given_name"),
        "surname": Prop("users.surname"),
        "mail": Prop("users.mail"),
        "userPrincipalName": Prop("users.user_principal_name"),
        "jobTitle": Prop("users.job_title"),
        "department": Prop("users.department"),
        "usageLocation": Prop("users.usage_location"),
        "accountEnabled": Prop("users.account_enabled", "bool"),
        "createdDateTime": Prop("users.created", "datetime"),
        **{name: _extra(name, "users") for name in (
            "mailNickname", "employeeId", "companyName", "city", "country", "state", "officeLocation",
            "mobilePhone", "preferredLanguage", "userType", "onPremisesImmutableId", "employeeType")},
    },
    collections={
        "assignedLicenses": Collection(
            "SELECT 1 FROM user_licenses AS ul_ WHERE ul_.user_id = users.id AND ",
            {"skuId": Prop("ul_.sku_id", "guid")}),
        "proxyAddresses": Collection(
            "SELECT 1 FROM json_each(json_extract(users.extra, '$.proxyAddresses')) AS je_ WHERE ",
            {"": Prop("je_.value")}),
        "otherMails": Collection(
            "SELECT 1 FROM json_each(json_extract(users.extra, '$.otherMails')) AS je_ WHERE ",
            {"": Prop("je_.value")}),
    },
    search_props=("displayName", "givenName", "surname", "mail", "userPrincipalName", "jobTitle", "department",
                  "mailNickname", "employeeId", "proxyAddresses", "otherMails", "officeLocation"),
    select_props=tuple(dict.fromkeys(USER_SELECT)),
)

GROUP_SELECT = (
    "id", "deletedDateTime", "classification", "createdDateTime", "creationOptions", "description",
    "displayName", "expirationDateTime", "groupTypes", "isAssignableToRole", "mail", "mailEnabled",
    "mailNickname", "membershipRule", "membershipRuleProcessingState", "onPremisesDomainName",
    "onPremisesLastSyncDateTime", "onPremisesNetBiosName", "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier", "onPremisesSyncEnabled", "preferredDataLocation", "preferredLanguage",
    "proxyAddresses", "renewedDateTime", "resourceBehaviorOptions", "resourceProvisioningOptions",
    "securityEnabled", "securityIdentifier", "theme", "visibility", "onPremisesProvisioningErrors",
    "serviceProvisioningErrors",
)

GROUP_SCHEMA = Schema(
    type_name="Group",
    odata_type="microsoft.graph.group",
    filter_props={
        "id": Prop("groups.id", "guid"),
        "displayName": Prop("groups.display_name"),
        "description": Prop("groups.description"),
        "mail": Prop("groups.mail"),
        "mailNickname": Prop("groups.mail_nickname"),
        "mailEnabled": Prop("groups.mail_enabled", "bool"),
        "securityEnabled": Prop("groups.security_enabled", "bool"),
        "visibility": Prop("groups.visibility"),
        "createdDateTime": Prop("groups.created", "datetime"),
        "isAssignableToRole": Prop("json_extract(groups.extra, '$.isAssignableToRole')", "bool"),
    },
    collections={
        "groupTypes": Collection("SELECT 1 FROM json_each(groups.group_types) AS je_ WHERE ",
                                 {"": Prop("je_.value")}),
        "proxyAddresses": Collection(
            "SELECT 1 FROM json_each(json_extract(groups.extra, '$.proxyAddresses')) AS je_ WHERE ",
            {"": Prop("je_.value")}),
    },
    search_props=("displayName", "description", "mail", "mailNickname", "proxyAddresses"),
    select_props=GROUP_SELECT,
)

# ---------------------------------------------------------------------------------------------- $filter AST


@dataclass(frozen=True)
class Literal:
    kind: str  # str | bool | null | guid | num | datetime
    value: Any


@dataclass(frozen=True)
class Compare:
    prop: str
    op: str
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class Call:
    func: str  # startswith | endswith
    prop: str
    value: Literal


@dataclass(frozen=True)
class AnyOf:
    prop: str
    var: str
    inner: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


Node = Compare | Call | AnyOf | BoolOp | Not

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^']|'')*')
  | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-]))
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
  | (?P<num>-?\d+(?:\.\d+)?(?![\w-]))
  | (?P<ident>[A-Za-z_$][A-Za-z0-9_./$]*)
  | (?P<punct>[(),:])
""", re.VERBOSE)

_COMPARE_OPS = {"eq", "ne", "gt", "ge", "lt", "le", "in"}
_FUNCS = {"startswith", "endswith"}


def invalid_filter(detail: str = "") -> GraphError:
    return bad_request(f"Invalid filter clause{': ' + detail if detail else ''}", code="BadRequest")


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise invalid_filter(f"Syntax error at position {pos} in '{text}'.")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, m.group()))
    return tokens


class _FilterParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise invalid_filter(f"Syntax error: unexpected end of '{self.text}'.")
        self.pos += 1
        return tok

    def expect(self, value: str) -> None:
        kind, got = self.take()
        if got != value:
            raise invalid_filter(f"Syntax error: expected '{value}' but found '{got}' in '{self.text}'.")

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "ident" and tok[1].lower() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.parse_or()
        if self.peek() is not None:
            raise invalid_filter(f"Syntax error at '{self.peek()[1]}' in '{self.text}'.")  # type: ignore[index]
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.keyword("or"):
            node = BoolOp("or", node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_unary()
        while self.keyword("and"):
            node = BoolOp("and", node, self.parse_unary())
        return node

    def parse_unary(self) -> Node:
        if self.keyword("not"):
            return Not(self.parse_unary())
        return self.parse_primary()

    def parse_primary(self) -> Node:
        kind, value = self.take()
        if value == "(":
            node = self.parse_or()
            self.expect(")")
            return node
        if kind != "ident":
            raise invalid_filter(f"Syntax error at '{value}' in '{self.text}'.")
        nxt = self.peek()
        if nxt is not None and nxt[1] == "(":
            self.take()
            lowered = value.lower()
            if lowered in _FUNCS:
                prop_kind, prop = self.take()
                if prop_kind != "ident":
                    raise invalid_filter(f"Syntax error at '{prop}' in '{self.text}'.")
                self.expect(",")
                lit = self.literal()
                self.expect(")")
                return Call(lowered, prop, lit)
            if lowered.endswith("/any"):
                var_kind, var = self.take()
                if var_kind != "ident":
                    raise invalid_filter(f"Syntax error at '{var}' in '{self.text}'.")
                self.expect(":")
                inner = self.parse_or()
                self.expect(")")
                return AnyOf(value[:-4], var, inner)
            raise invalid_filter(f"Unknown function '{value}'.")
        op_tok = self.take()
        op = op_tok[1].lower()
        if op_tok[0] != "ident" or op not in _COMPARE_OPS:
            raise invalid_filter(f"Syntax error at '{op_tok[1]}' in '{self.text}'.")
        if op == "in":
            self.expect("(")
            items = [self.literal()]
            while self.peek() is not None and self.peek()[1] == ",":  # type: ignore[index]
                self.take()
                items.append(self.literal())
            self.expect(")")
            return Compare(value, op, tuple(items))
        return Compare(value, op, self.literal())

    def literal(self) -> Literal:
        kind, value = self.take()
        if kind == "str":
            return Literal("str", value[1:-1].replace("''", "'"))
        if kind in ("guid", "datetime"):
            return Literal(kind, value)
        if kind == "num":
            return Literal("num", float(value) if "." in value else int(value))
        if kind == "ident" and value.lower() in ("true", "false"):
            return Literal("bool", value.lower() == "true")
        if kind == "ident" and value.lower() == "null":
            return Literal("null", None)
        raise invalid_filter(f"Syntax error at '{value}' in '{self.text}'.")


def parse_filter(text: str) -> Node:
    """Parse a `$filter` expression into an AST (raises GraphError 400 on syntax errors)."""
    if not text.strip():
        raise invalid_filter("The filter is empty.")
    return _FilterParser(text).parse()


# ---------------------------------------------------------------------------------------------- SQL


_EDM = {"str": "Edm.String", "bool": "Edm.Boolean", "guid": "Edm.Guid", "datetime": "Edm.DateTimeOffset",
        "num": "Edm.Int32", "null": "null"}
_OP_KIND = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual",
            "lt": "LessThan", "le": "LessThanOrEqual", "in": "In"}
_SQL_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Compiler:
    def __init__(self, schema: Schema, advanced: bool) -> None:
        self.schema = schema
        self.advanced = advanced
        self.params: list[Any] = []

    def need_advanced(self, operator: str) -> None:
        if not self.advanced:
            raise unsupported_query(f"Operator '{operator}' {ADVANCED_HINT}")

    def unsupported(self, prop: str) -> GraphError:
        return unsupported_query(f"Unsupported or invalid query filter clause specified for property '{prop}' "
                                 f"of resource '{self.schema.type_name}'.")

    def resolve(self, prop: str, scope: tuple[str, Collection] | None) -> Prop:
        if scope is not None:
            var, coll = scope
            if prop == var:
                sub = ""
            elif prop.startswith(var + "/"):
                sub = prop[len(var) + 1:]
            else:
                raise self.unsupported(prop)
            if sub not in coll.fields:
                raise self.unsupported(prop)
            return coll.fields[sub]
        found = self.schema.filter_props.get(prop)
        if found is None:
            raise self.unsupported(prop)
        return found

    def value(self, target: Prop, lit: Literal, op: str) -> Any:
        ok = {"str": ("str", "guid"), "guid": ("guid", "str"), "bool": ("bool",),
              "datetime": ("datetime", "str")}[target.kind]
        if lit.kind not in ok:
            raise bad_request("A binary operator with incompatible types was detected. Found operand types "
                              f"'{_EDM[target.kind]}' and '{_EDM[lit.kind]}' for operator kind "
                              f"'{_OP_KIND.get(op, op)}'.", code="BadRequest")
        if lit.kind == "bool":
            return 1 if lit.value else 0
        if target.kind == "guid" and isinstance(lit.value, str):
            return lit.value.lower()  # GUIDs are stored lower-case: compared without NOCASE, the index serves
        return lit.value

    def compile(self, node: Node, scope: tuple[str, Collection] | None = None) -> str:
        if isinstance(node, BoolOp):
            left = self.compile(node.left, scope)
            right = self.compile(node.right, scope)
            return f"({left} {node.op.upper()} {right})"
        if isinstance(node, Not):
            self.need_advanced("not")
            return f"(NOT COALESCE({self.compile(node.operand, scope)}, 0))"
        if isinstance(node, Call):
            target = self.resolve(node.prop, scope)
            if node.func == "endswith":
                self.need_advanced("endsWith")
            if target.kind != "str" or node.value.kind != "str":
                raise self.unsupported(node.prop)
            text = _like_escape(node.value.value)
            self.params.append(text + "%" if node.func == "startswith" else "%" + text)
            return f"({target.sql} LIKE ? ESCAPE '\\')"
        if isinstance(node, AnyOf):
            if scope is not None or node.prop not in self.schema.collections:
                raise self.unsupported(node.prop)
            coll = self.schema.collections[node.prop]
            inner = self.compile(node.inner, (node.var, coll))
            return f"EXISTS ({coll.source}{inner})"
        return self.compare(node, scope)

    def collection_count(self, node: Compare) -> str:
        """`assignedLicenses/$count eq 0` (eq/ne with 0 or 1, advanced queries only; docs/microsoft.md §5.11)."""
        name = node.prop[: -len("/$count")]
        coll = self.schema.collections.get(name)
        if coll is None:
            raise self.unsupported(node.prop)
        self.need_advanced(node.op)
        lit = node.value
        if node.op not in ("eq", "ne") or not isinstance(lit, Literal) or lit.kind != "num" or lit.value not in (0, 1):
            raise self.unsupported(node.prop)
        self.params.append(lit.value)
        counted = coll.source.replace("SELECT 1 ", "SELECT count(*) ", 1)
        return f"(({counted}1) {'=' if node.op == 'eq' else '<>'} ?)"

    def compare(self, node: Compare, scope: tuple[str, Collection] | None) -> str:
        if scope is None and node.prop.endswith("/$count"):
            return self.collection_count(node)
        target = self.resolve(node.prop, scope)
        collate = " COLLATE NOCASE" if target.kind == "str" else ""
        if node.op == "in":
            assert isinstance(node.value, tuple)
            values = [self.value(target, lit, "in") for lit in node.value]
            self.params.extend(values)
            return f"({target.sql}{collate} IN ({', '.join('?' for _ in values)}))"
        assert isinstance(node.value, Literal)
        lit = node.value
        if lit.kind == "null":
            if node.op == "eq":
                return f"({target.sql} IS NULL)"
            if node.op == "ne":
                self.need_advanced("ne")
                return f"({target.sql} IS NOT NULL)"
            raise invalid_filter(f"Operator '{node.op}' cannot be used with null.")
        value = self.value(target, lit, node.op)
        if node.op == "eq":
            self.params.append(value)
            return f"({target.sql} = ?{collate})"
        if node.op == "ne":
            self.need_advanced("ne")
            self.params.append(value)
            return f"({target.sql} IS NULL OR {target.sql} <> ?{collate})"
        if target.kind == "bool":
            raise self.unsupported(node.prop)
        self.params.append(value)
        return f"({target.sql} {_SQL_OPS[node.op]} ?{collate})"


def compile_filter(node: Node, schema: Schema, advanced: bool) -> tuple[str, list[Any]]:
    """SQL boolean expression plus its parameters. `advanced` = ConsistencyLevel: eventual and $count=true."""
    compiler = _Compiler(schema, advanced)
    return compiler.compile(node), compiler.params


def filter_sql(text: str | None, schema: Schema, advanced: bool) -> tuple[str, list[Any]]:
    """`$filter` text to SQL; `("1", [])` without a filter."""
    if text is None:
        return "1", []
    return compile_filter(parse_filter(text), schema, advanced)


# ---------------------------------------------------------------------------------------------- $search


@dataclass(frozen=True)
class SearchClause:
    prop: str
    text: str


@dataclass(frozen=True)
class SearchOp:
    op: str  # AND | OR
    left: SearchNode
    right: SearchNode


SearchNode = SearchClause | SearchOp

_SEARCH_TOKEN = re.compile(r'\s+|"(?:[^"\\]|\\.)*"|\(|\)|AND\b|OR\b')


def _invalid_search(text: str) -> GraphError:
    return bad_request(f"Syntax error: character '{text[:1]}' is not valid in $search query '{text}'.",
                       code="BadRequest")


class _SearchParser:
    def __init__(self, text: str, schema: Schema) -> None:
        self.text = text
        self.schema = schema
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text):
            m = _SEARCH_TOKEN.match(text, pos)
            if m is None:
                raise _invalid_search(text[pos:])
            pos = m.end()
            if m.group().strip():
                self.tokens.append(m.group())
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def parse(self) -> SearchNode:
        if not self.tokens:
            raise _invalid_search(self.text)
        node = self.parse_or()
        if self.peek() is not None:
            raise _invalid_search(self.peek() or "")
        return node

    def parse_or(self) -> SearchNode:
        node = self.parse_and()
        while self.peek() == "OR":
            self.pos += 1
            node = SearchOp("OR", node, self.parse_and())
        return node

    def parse_and(self) -> SearchNode:
        node = self.parse_atom()
        while self.peek() not in (None, "OR", ")"):
            if self.peek() == "AND":
                self.pos += 1
            node = SearchOp("AND", node, self.parse_atom())
        return node

    def parse_atom(self) -> SearchNode:
        tok = self.peek()
        if tok is None or tok in ("AND", "OR", ")"):
            raise _invalid_search(tok or self.text)
        self.pos += 1
        if tok == "(":
            node = self.parse_or()
            if self.peek() != ")":
                raise _invalid_search(self.text)
            self.pos += 1
            return node
        body = re.sub(r"\\(.)", r"\1", tok[1:-1])
        prop, sep, text = body.partition(":")
        if not sep:
            raise unsupported_query(f"Unsupported or invalid query search clause '{body}': use "
                                    f"\"property:text\", e.g. \"displayName:{body}\".")
        canonical = {p.lower(): p for p in self.schema.search_props}.get(prop.strip().lower())
        if canonical is None:
            raise unsupported_query(f"Unsupported or invalid query search clause specified for property "
                                    f"'{prop}' of resource '{self.schema.type_name}'.")
        return SearchClause(canonical, text)


def parse_search(text: str, schema: Schema) -> SearchNode:
    return _SearchParser(text, schema).parse()


def _split_piece(piece: str) -> list[str]:
    """Split an alphanumeric run at lower→upper case changes and letter/digit boundaries."""
    parts: list[str] = []
    cur = ""
    for ch in piece:
        if cur and ((cur[-1].islower() and ch.isupper()) or (cur[-1].isdigit() != ch.isdigit())):
            parts.append(cur)
            cur = ch
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


def search_tokens(text: str, joined: bool = True) -> set[str]:
    """Tokens as the directory index makes them; `hello-world` also yields `helloworld` when `joined`."""
    out: set[str] = set()
    for word in text.split():
        pieces = [p for p in re.split(r"[\W_]+", word) if p]
        for piece in pieces:
            out.update(t.lower() for t in _split_piece(piece))
        if joined and len(pieces) > 1:
            out.add("".join(pieces).lower())
    return out


def _clause_matches(clause: SearchClause, obj: dict[str, Any]) -> bool:
    wanted = search_tokens(clause.text, joined=False)
    value = obj.get(clause.prop)
    if value is None:
        return False
    texts = value if isinstance(value, list) else [value]
    have: set[str] = set()
    for item in texts:
        have |= search_tokens(str(item))
    return all(any(h.startswith(w) for h in have) for w in wanted)


def search_matches(node: SearchNode, obj: dict[str, Any]) -> bool:
    """Evaluate a parsed `$search` against an object's full Graph JSON."""
    if isinstance(node, SearchClause):
        return _clause_matches(node, obj)
    if node.op == "AND":
        return search_matches(node.left, obj) and search_matches(node.right, obj)
    return search_matches(node.left, obj) or search_matches(node.right, obj)


_STRIP = " -._@',&()/+#:;!?\"*"


def _stripped(sql: str) -> str:
    expr = f"lower({sql})"
    for ch in _STRIP:
        lit = ch.replace("'", "''")
        expr = f"replace({expr}, '{lit}', '')"
    return expr


def search_prefilter(node: SearchNode, schema: Schema) -> tuple[str, list[Any]]:
    """A SQL condition every `$search` match satisfies (each query token is a substring of the value with its
    separators removed), so only candidates reach the exact token match in Python."""
    if isinstance(node, SearchOp):
        left, lp = search_prefilter(node.left, schema)
        right, rp = search_prefilter(node.right, schema)
        return f"({left} {node.op} {right})", [*lp, *rp]
    prop = schema.filter_props.get(node.prop)
    words = sorted(search_tokens(node.text, joined=False))
    if prop is None or prop.kind != "str" or not words:
        return "1", []
    column = _stripped(prop.sql)
    return "(" + " AND ".join(f"{column} LIKE ? ESCAPE '\\'" for _ in words) + ")", [
        "%" + _like_escape(w) + "%" for w in words]


# ---------------------------------------------------------------------------------------------- $select / $top


def parse_select(text: str | None, schema: Schema, extra: tuple[str, ...] = ()) -> list[str] | None:
    """Canonical property names in request order, or None when `$select` is absent/empty."""
    if text is None or not text.strip():
        return None
    allowed = {p.lower(): p for p in (*schema.select_props, *extra)}
    out: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        canonical = allowed.get(name.lower())
        if canonical is None:
            raise bad_request(f"Could not find a property named '{name}' on type '{schema.odata_type}'.",
                              code="BadRequest")
        if canonical not in out:
            out.append(canonical)
    return out


def parse_top(text: str | None, default: int = 100) -> int:
    if text is None:
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise bad_request(f"Invalid value '{text}' for $top query option found. The $top query option "
                          "requires a non-negative integer value.", code="BadRequest") from None
    if not 1 <= value <= 999:
        raise unsupported_query(f"Invalid page size specified: '{text}'. Must be between 1 and 999 inclusive.")
    return value


# ---------------------------------------------------------------------------------------------- tokens


def encode_token(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any] | None:
    """The state inside a skip/delta token, or None when it is not one of ours."""
    try:
        padded = token + "=" * (-len(token) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        return None
    return state if isinstance(state, dict) else None
