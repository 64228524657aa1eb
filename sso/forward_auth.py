"""Forward auth for nginx `auth_request` and Traefik ForwardAuth: `GET /auth/verify`, `/auth/start`, JWKS.

`/auth/verify` is on the hot path of every protected request: it reads the session (one lookup by primary key
or one Redis GET), checks the allow-lists, and answers with identity headers and a short-lived ES256 assertion,
re-signed only when the cached one is about to expire.

Without the legacy query parameters (`?policy=`, `?allowed_groups=`, `?allowed_emails=`, `?allowed_domains=`, which
keep their meaning exactly), the access rules (`policies.evaluate`) decide the original request: its method and URL
from nginx (`X-Original-Method`, `X-Original-URL`) or Traefik (`X-Forwarded-Method/Proto/Host/Uri`), and the client
address as ProxyFix (TRUSTED_PROXY_HOPS) trusts it. Public paths answer 200 without sign-in; a step-up is a redirect
to /auth/start (redirect mode) or a 401; a denial is a 403 naming the rule and the reason, and is recorded.
Every answer says how long the proxy may reuse it (`X-Accel-Expires`, sso.decision_reuse): up to
FORWARD_AUTH_CACHE_SECONDS for an allowed or public 200, 0 for everything else.

Answers are cached per (session, audience, rule groups, policy version and rule): the fast path serves them only
after deciding the request itself with the same compiled policy, so a new version or another rule never reuses an
answer.
The answer stays small whatever the user's group count (nginx reads it into a 4 KB buffer by default; Entra puts
up to 200 groups in a token): the groups listed are capped at GROUPS_BUDGET bytes, keeping first the ones the
request's rule names, with an overflow marker when the list is partial. The assertion is always for one audience:
`?audience=` or the host of the URL the visitor asked the proxy for, so an upstream cannot replay it to another.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from flask import Response, current_app, jsonify, redirect, request, session, url_for
from joserfc import jwt

from core.extensions import limiter
from observability import metrics, tracing
from policies import decisions
from policies.evaluate import (
    CompiledPolicy,
    Decision,
    RequestFacts,
    compiled,
    current_names,
    normalize_host,
    normalize_path,
)
from sso import bp, step_up
from sso.decision_reuse import NO_REUSE, REUSE_HEADER, reuse_seconds
from sso.settings import current_settings
from sso.signing_keys import ASSERTION_LIFETIME, JWKS_MAX_AGE, active_key, published_jwks

ASSERTION_REUSE = 60  # re-sign when less than this is left
GROUPS_BUDGET = 768  # bytes of the groups header (and of the assertion's groups): 20 Entra group ids
OVERFLOW_HEADER = "X-Auth-Request-Groups-Overflow"
HOST_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9.:_-]{0,251}[a-z0-9])?$")  # names, IPv4, IPv6 without brackets
AUDIENCE_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._~:/-]{0,253}[A-Za-z0-9/])?$")
METHOD_PATTERN = re.compile(r"^[A-Z]{1,16}$")
LEGACY_ARGS = ("policy", "allowed_groups", "allowed_emails", "allowed_domains")
AnswerKey = tuple[str, str, str, str]  # (session id hash, audience, the rule's groups, "version:rule id" or "")
HostHeaders = tuple[tuple[str, str], ...]  # (header name, claim) the request's host passes upstream
CLAIM_HEADER_BUDGET = 2048  # bytes of one claim header: whole items, as many as fit


@dataclass(frozen=True)
class SignedAnswer:
    """The 200 answer's headers for one session, audience and rule, with the assertion in them."""

    expires_at: float
    headers: list[tuple[str, str]]


_answers: dict[AnswerKey, SignedAnswer] = {}


def issuer() -> str:
    return current_app.config.get("PUBLIC_BASE_URL") or request.host_url.rstrip("/")


def listed_groups(identity: Mapping[str, Any], rule_groups: list[str]) -> tuple[list[str], bool]:
    """The groups the answer names, and whether that list is partial (over GROUPS_BUDGET).

    All of them when they fit; otherwise those the rule names first, then the others, as many as fit."""
    names = [_header_value(group) for group in identity.get("groups") or []]
    if sum(len(name) + 1 for name in names) <= GROUPS_BUDGET + 1:
        return names, False
    wanted = set(rule_groups)
    ordered = [n for n in names if n.lower() in wanted] + [n for n in names if n.lower() not in wanted]
    kept: list[str] = []
    size = -1
    for name in ordered:
        size += len(name) + 1
        if size > GROUPS_BUDGET:
            break
        kept.append(name)
    return kept, True


def answer_key(session_key: str, audience: str, rules: Mapping[str, list[str]], decision: Decision | None = None,
               host_headers: HostHeaders = ()) -> AnswerKey:
    """What a cached answer is for: the session, the audience, the rule's groups (listed first), and for the access
    rules the policy version, the rule that allowed it and the host's claim headers."""
    marker = f"{decision.policy_version}:{decision.rule_id}" if decision is not None else ""
    if host_headers:
        marker += ":" + ";".join(f"{name}={claim}" for name, claim in host_headers)
    return session_key, audience, ",".join(rules.get("groups") or ()), marker


def session_key(id_hash: str, identity: Mapping[str, Any]) -> str:
    """The session part of an answer's key: its id hash and how many times live access refreshed its identity, so
    an answer signed before a group change is never served after it."""
    revision = identity.get("rev")
    return f"{id_hash}:{revision}" if isinstance(revision, int) and revision else id_hash


def uses_legacy(args: Mapping[str, str]) -> bool:
    """`?policy=` or an `?allowed_*=` list: the pre-policies allow-lists decide, exactly as before."""
    return any(name in args for name in LEGACY_ARGS)


def original_method(headers: Mapping[str, str]) -> str:
    """The visitor's method: X-Original-Method (nginx) or X-Forwarded-Method (Traefik); GET when neither is sent."""
    method = (headers.get("X-Original-Method") or headers.get("X-Forwarded-Method") or "GET").strip().upper()
    return method if METHOD_PATTERN.fullmatch(method) else "INVALID"


def request_facts(headers: Mapping[str, str], client_ip: str | None) -> RequestFacts:
    """What the rules decide: the original method, host (no port) and path (normalized, no query), client IP.
    A proxy that sends only `X-Original-URI` (a path, as some nginx guides do) gets host "" and that path; one that
    says nothing of the original URL host "" and path "/" (either way only `*` rules match the host)."""
    url = requested_url(headers)
    parts = _split_url(url) if url and len(url) <= 8192 else None
    host = normalize_host(parts.hostname or "") if parts is not None else ""
    if parts is not None:
        path = normalize_path(parts.path or "/")
    else:
        uri = headers.get("X-Original-URI") or "/"
        path = normalize_path(uri[:8192] if uri.startswith("/") else "/")
    return RequestFacts(original_method(headers), host, path, client_ip)


def rule_groups(policy: CompiledPolicy, decision: Decision) -> dict[str, list[str]]:
    """The allowing rule's groups, listed first in the answer when the user's groups do not all fit."""
    rule = policy.by_id.get(decision.rule_id) if decision.rule_id else None
    return {"groups": sorted(rule.any_ids | set(rule.all_ids))} if rule is not None else {"groups": []}


def claim_value(identity: Mapping[str, Any], claim: str) -> str:
    """A session claim as one header value: a list joined with commas (whole items, within CLAIM_HEADER_BUDGET
    bytes), a number as digits, nothing as ""."""
    value = identity.get(claim)
    if value is None or value == "":
        return ""
    if not isinstance(value, list | tuple):
        return _header_value(value)
    kept: list[str] = []
    size = -1
    for item in value:
        text = _header_value(item).replace(",", "%2C")
        size += len(text) + 1
        if size > CLAIM_HEADER_BUDGET:
            break
        kept.append(text)
    return ",".join(kept)


def host_headers(policy: CompiledPolicy | None, facts: RequestFacts | None) -> HostHeaders:
    """The claim headers the request's host entry asks for (none without the access rules)."""
    if policy is None or facts is None:
        return ()
    return policy.for_host(facts.host).headers


def signed_answer(identity: Mapping[str, Any], user_id: str, audience: str, rules: Mapping[str, list[str]],
                  key: AnswerKey, claim_headers: HostHeaders = ()) -> SignedAnswer:
    """The answer with a compact ES256 JWT for `audience`, re-used while it has over ASSERTION_REUSE left."""
    cached = cached_answer(key)
    if cached:
        return cached
    groups, partial = listed_groups(identity, rules.get("groups") or [])
    moment = time.time()
    signer = active_key()
    claims: dict[str, Any] = {"iss": issuer(), "aud": audience, "sub": user_id, "email": identity.get("email"),
                              "name": identity.get("name"), "groups": groups,
                              "iat": int(moment), "exp": int(moment) + ASSERTION_LIFETIME}
    if identity.get("user") and identity.get("user") != identity.get("email"):
        claims["preferred_username"] = identity["user"]
    if partial:
        claims["groups_overflow"] = True
    if identity.get("tid"):
        claims["tid"] = identity["tid"]
    token = jwt.encode({"alg": "ES256", "kid": signer.kid, "typ": "JWT"}, claims, signer.key)
    headers = identity_headers(identity, token, groups, partial)
    headers.extend((name, claim_value(identity, claim)) for name, claim in claim_headers)
    answer = SignedAnswer(moment + ASSERTION_LIFETIME, headers)
    if len(_answers) > 10000:
        _answers.clear()
    _answers[key] = answer
    return answer


def cached_answer(key: AnswerKey) -> SignedAnswer | None:
    cached = _answers.get(key)
    if cached and cached.expires_at - time.time() > ASSERTION_REUSE:
        return cached
    return None


def _split(value: str | None) -> list[str]:
    return [part.strip().lower() for part in (value or "").split(",") if part.strip()]


def allowed(identity: dict[str, Any], rules: dict[str, list[str]]) -> bool:
    """Each list given must be satisfied (any of its entries); no lists = any signed-in user."""
    email = str(identity.get("email") or "").lower()
    if rules.get("emails") and email not in rules["emails"]:
        return False
    if rules.get("domains") and email.rpartition("@")[2] not in rules["domains"]:
        return False
    if rules.get("groups"):
        groups = {str(g).lower() for g in identity.get("groups") or []}  # unknown groups never match
        if groups.isdisjoint(rules["groups"]):
            return False
    return True


def rules_from(args: Mapping[str, str], policies: dict[str, Any]) -> dict[str, list[str]] | None:
    """The allow-lists from the query, or from `policy=<name>` in the settings (None: unknown policy)."""
    rules = {"groups": _split(args.get("allowed_groups")), "emails": _split(args.get("allowed_emails")),
             "domains": _split(args.get("allowed_domains"))}
    name = args.get("policy")
    if name:
        policy = policies.get(name)
        if not isinstance(policy, dict):
            return None
        for kind in ("groups", "emails", "domains"):
            rules[kind] += [str(item).strip().lower() for item in policy.get(kind) or [] if str(item).strip()]
    return rules


def requested_rules() -> dict[str, list[str]] | None:
    args = request.args
    return rules_from(args, current_settings().policies if args.get("policy") else {})


def host_allowed(host: str, domains: list[str] | None = None) -> bool:
    host = host.lower().rstrip(".")
    for entry in current_app.config.get("ALLOWED_REDIRECT_DOMAINS") or [] if domains is None else domains:
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


def _split_url(url: str) -> Any:
    try:
        return urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None


def safe_return_url(url: str | None, domains: list[str] | None = None) -> str | None:
    """An absolute http(s) URL whose host is in ALLOWED_REDIRECT_DOMAINS, else None."""
    if not url or len(url) > 4096 or any(ch in url for ch in "\\\r\n\t "):
        return None
    parts = _split_url(url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.username \
            or parts.password:
        return None
    return url if host_allowed(parts.hostname, domains) else None


def requested_url(headers: Mapping[str, str]) -> str | None:
    """What the visitor asked the proxy for: X-Original-URL (nginx) or X-Forwarded-Proto/Host/Uri (Traefik)."""
    url = headers.get("X-Original-URL")
    if not url and headers.get("X-Forwarded-Host"):
        proto = headers.get("X-Forwarded-Proto", "https").split(",")[0].strip()
        host = headers["X-Forwarded-Host"].split(",")[0].strip()
        url = f"{proto}://{host}{headers.get('X-Forwarded-Uri', '/')}"
    return url


def original_url_from(headers: Mapping[str, str], domains: list[str] | None = None) -> str | None:
    """The requested URL when its host is one we may send people back to."""
    return safe_return_url(requested_url(headers), domains)


def original_url() -> str | None:
    return original_url_from(request.headers)


def original_host(headers: Mapping[str, str]) -> str | None:
    """The host (no port) of the URL the visitor asked the proxy for, whatever ALLOWED_REDIRECT_DOMAINS says."""
    url = requested_url(headers)
    parts = _split_url(url) if url and len(url) <= 4096 else None
    host = (parts.hostname or "").rstrip(".") if parts is not None else ""
    return host if HOST_PATTERN.fullmatch(host) else None


def audience_for(args: Mapping[str, str], headers: Mapping[str, str], gateway_url: str) -> str | None:
    """`?audience=` when the proxy's rule sets one, else the original URL's host, else (a proxy that says nothing
    of the original URL) the gateway's own host, which no upstream accepts. None: a malformed `audience=`."""
    explicit = args.get("audience")
    if explicit is not None:
        return explicit if AUDIENCE_PATTERN.fullmatch(explicit) else None
    gateway = _split_url(gateway_url)
    return original_host(headers) or (gateway.hostname if gateway is not None else None) or "gateway"


def _header_value(value: Any) -> str:
    text = str(value or "")
    return text if text.isascii() and text.isprintable() else quote(text, safe=" @.,;:/+-_()'")


def identity_headers(identity: Mapping[str, Any], token: str, groups: list[str],
                     partial: bool) -> list[tuple[str, str]]:
    headers = [("X-Auth-Request-User", _header_value(identity.get("user"))),
               ("X-Auth-Request-Email", _header_value(identity.get("email"))),
               ("X-Auth-Request-Name", _header_value(identity.get("name"))),
               ("X-Auth-Request-Groups", ",".join(groups)),
               ("X-Auth-Request-Assertion", token), ("Cache-Control", "no-store")]
    if partial:
        headers.append((OVERFLOW_HEADER, "true"))
    return headers


def _refusal(status: int, code: str, message: str, rule: str | None = None) -> Response:
    error = {"code": code, "message": message}
    if rule is not None:
        error["rule"] = rule
    response = jsonify(error=error)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/auth/verify")
@limiter.exempt  # the hot path of every protected request; nothing to guess here
def verify() -> Response:
    started = time.perf_counter()
    response, outcome = _decide() if uses_legacy(request.args) else _decide_by_rules()
    response.headers.setdefault(*NO_REUSE)  # only an allowed or public 200 may be reused by the proxy
    response.headers.extend(tracing.context_headers())  # the upstream app's spans join the verify's trace
    policies = current_settings().policies if request.args.get("policy") else {}
    metrics.forward_auth_decision(outcome or OUTCOMES.get(response.status_code, "invalid"),
                                  metrics.policy_label(request.args, policies), time.perf_counter() - started)
    return response


OUTCOMES = {200: "allowed", 403: "denied", 401: "not_signed_in", 302: "not_signed_in"}


def _to_start(target: str | None) -> Response:
    query = {"rd": target} if target else {}
    return redirect(issuer() + url_for("sso.forward_start") + ("?" + urlencode(query) if query else ""))


def _not_signed_in() -> Response:
    if request.args.get("redirect") == "1":
        return _to_start(original_url())
    return _refusal(401, "not_signed_in", "Not signed in.")


def _allowed_answer(identity: dict[str, Any], rules: Mapping[str, list[str]],
                    decision: Decision | None = None, claim_headers: HostHeaders = ()) -> Response:
    audience = audience_for(request.args, request.headers, issuer())
    if audience is None:
        return _refusal(400, "invalid_audience", "audience= must be a host name or URI (letters, digits, . _ ~ : / -).")
    record = getattr(session, "record", None)
    user_id = str(session["_user_id"])
    key = answer_key(session_key(record.id_hash, identity) if record is not None else f"user:{user_id}", audience,
                     rules, decision, claim_headers)
    answer = signed_answer(identity, user_id, audience, rules, key, claim_headers)
    return Response(status=200, headers=answer.headers)


def _decide() -> tuple[Response, str | None]:
    """The legacy allow-lists (`?policy=`, `?allowed_*=`), unchanged."""
    identity = session.get("identity") if session.get("_user_id") else None
    if not identity:
        return _not_signed_in(), None
    rules = requested_rules()
    if rules is None or not allowed(identity, rules):
        return _refusal(403, "forbidden", "Signed in, but not allowed by this rule."), None
    return _reusable(_allowed_answer(identity, rules), identity), None


def _reusable(response: Response, identity: Mapping[str, Any] | None, policy: CompiledPolicy | None = None,
              facts: RequestFacts | None = None, decision: Decision | None = None) -> Response:
    """A 200 says how long the proxy may reuse it (sso.decision_reuse); anything else, not at all."""
    if response.status_code == 200:
        record = getattr(session, "record", None) if identity else None
        seconds = reuse_seconds(int(current_app.config.get("FORWARD_AUTH_CACHE_SECONDS", 0)), time.time(),
                                policy=policy, facts=facts, decision=decision, identity=identity,
                                session_until=record.deadline() if record is not None else None)
        response.headers[REUSE_HEADER] = str(seconds)
    return response


def _decide_by_rules() -> tuple[Response, str]:
    """The access rules for the original method and URL."""
    identity = session.get("identity") if session.get("_user_id") else None
    facts = request_facts(request.headers, request.remote_addr)
    policy = compiled()
    decision = policy.evaluate(facts, identity or None, normalized=True)
    claim_headers = host_headers(policy, facts)
    if decision.outcome == "public":
        answer = _allowed_answer(identity, {"groups": []}, decision, claim_headers) if identity else \
            Response(status=200, headers={"Cache-Control": "no-store"})
        return _reusable(answer, identity, policy, facts, decision), "public"
    if decision.outcome == "not_signed_in":
        return _not_signed_in(), "not_signed_in"
    if decision.outcome == "allowed":
        answer = _allowed_answer(identity, rule_groups(policy, decision), decision, claim_headers)
        return _reusable(answer, identity, policy, facts, decision), "allowed"
    decision = current_names(decision)
    record = getattr(session, "record", None)
    decisions.record(decision, facts, identity, decisions.session_label(record.id_hash if record else ""),
                     _user_number(session.get("_user_id")))
    if decision.outcome == "step_up":
        if request.args.get("redirect") == "1":
            return _to_start(original_url()), "step_up"
        return _refusal(401, "step_up_required", decision.reason, decision.rule_name), "step_up"
    target = original_url() if request.args.get("redirect") == "1" else None
    if target:  # Traefik shows the auth answer itself: send the person to the page that explains the denial
        return redirect(issuer() + url_for("sso.denied", rd=target)), "denied"
    return _refusal(403, "forbidden", decision.reason, decision.rule_name), "denied"


def _user_number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@bp.get("/auth/start")
def forward_start() -> Response | tuple[str, int]:
    """Sign in (if needed; or step up when the rules ask), then go back to the protected app's URL when its host
    is allowed."""
    target = safe_return_url(request.args.get("rd"))
    if session.get("_user_id") and session.get("identity"):
        stepped = step_up.begin_if_needed(target) if target else None  # the rules may ask for one more sign-in
        return stepped if stepped is not None else redirect(target or url_for("sso.home"))
    next_path = url_for("sso.forward_start", rd=target) if target else None
    return redirect(url_for("sso.login", next=next_path) if next_path else url_for("sso.login"))


@bp.get("/.well-known/jwks.json")
@limiter.exempt
def jwks() -> Response:
    response = jsonify(keys=published_jwks())
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return response
