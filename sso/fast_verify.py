"""A WSGI fast path for `GET /auth/verify`, the request every protected page of every app behind the proxy makes.

It answers only the common cases itself — a live session allowed (by the legacy allow-lists, or by the access
rules compiled for the version confirmed current within POLICY_REFRESH_SECONDS, asking the database when that time
is up) with an assertion already signed and
cached for that session, audience, policy version and rule, or a public path — with the same headers the Flask view
sends (X-Accel-Expires, how long nginx may reuse the answer, included: sso.decision_reuse), after at most one
session read. Everything else (no or bad cookie, expired session, a `last_seen` update due,
401/403/302 answers, a new assertion to sign, a policy whose settings or version are not known to be current) falls
through to the Flask view, which stays the reference behaviour.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask

from observability import metrics, tracing
from policies.evaluate import CompiledPolicy, compiled, compiled_if_fresh
from sso import forward_auth
from sso.decision_reuse import reuse_header, reuse_seconds
from sso.sessions import TOKEN_PATTERN, hash_token, store

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
HEADER_NAMES = {"HTTP_X_ORIGINAL_URL": "X-Original-URL", "HTTP_X_FORWARDED_HOST": "X-Forwarded-Host",
                "HTTP_X_FORWARDED_PROTO": "X-Forwarded-Proto", "HTTP_X_FORWARDED_URI": "X-Forwarded-Uri",
                "HTTP_X_ORIGINAL_METHOD": "X-Original-Method", "HTTP_X_FORWARDED_METHOD": "X-Forwarded-Method",
                "HTTP_X_ORIGINAL_URI": "X-Original-URI"}
PUBLIC_HEADERS = [("Cache-Control", "no-store")]


def cookie_value(header: str, name: str) -> str | None:
    """The first `name` cookie in a raw Cookie header, without decoding the others.

    Other apps on the same domain may set cookies that are not UTF-8 (WSGI hands the header over as latin-1);
    ours is 43 ASCII characters, so nothing else needs to be decoded, let alone be valid."""
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return None


class ForwardAuthFastPath:
    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.store: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/auth/verify" and environ.get("REQUEST_METHOD") == "GET":
            started, started_ns = time.perf_counter(), tracing.now_ns()
            answer = self._answer(environ)
            if answer is not None:
                headers, policy = answer
                trace_headers = tracing.fast_path_span(environ, started_ns)
                start_response("200 OK", [*headers, *trace_headers, ("Content-Length", "0")])
                metrics.forward_auth_decision("allowed", policy, time.perf_counter() - started)
                return [b""]
        return self.wsgi_app(environ, start_response)

    def _backend(self) -> Any:
        if self.store is None:

            with self.app.app_context():
                self.store = store()
                getattr(self.store, "bind_engine", lambda: None)()
        return self.store

    def _refreshed_policy(self) -> CompiledPolicy | None:
        """Ask the database which version is current (at most once per POLICY_REFRESH_SECONDS)."""
        try:
            with self.app.app_context():
                return compiled()
        except Exception:  # noqa: BLE001 - the Flask path handles (and reports) database problems
            return None

    def _answer(self, environ: dict[str, Any]) -> tuple[list[tuple[str, str]], str] | None:
        """The 200 headers and the policy label for metrics, or None to let the Flask view answer."""
        args = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        legacy = forward_auth.uses_legacy(args)
        headers = {name: environ[key] for key, name in HEADER_NAMES.items() if key in environ}
        policy = None if legacy else compiled_if_fresh(self.app) or self._refreshed_policy()
        if not legacy and policy is None:  # the database could not say which version is current: the view answers
            return None
        facts = None if policy is None else forward_auth.request_facts(headers, environ.get("REMOTE_ADDR"))
        token = cookie_value(environ.get("HTTP_COOKIE", ""), self.app.config.get("SESSION_COOKIE_NAME", "gw_session"))
        if not token or not TOKEN_PATTERN.fullmatch(token):
            if policy is not None and facts is not None and \
                    policy.evaluate(facts, None, normalized=True).outcome == "public":
                reuse = reuse_seconds(self._reuse_limit(), time.time(), policy=policy, facts=facts)
                return [*PUBLIC_HEADERS, reuse_header(reuse)], "none"
            return None
        policies: dict[str, Any] = {}
        if "policy" in args:
            cached = self.app.extensions.get("sso_settings")
            if cached is None or cached[0] <= time.monotonic():
                return None
            policies = cached[1].policies
        rules = forward_auth.rules_from(args, policies)
        if rules is None:
            return None
        id_hash = hash_token(token)
        try:
            record = self._backend().get_fast(id_hash)
        except Exception:  # noqa: BLE001 - the Flask path handles (and reports) store problems
            return None
        now = time.time()
        if record is None or record.expired(now) or record.touch_due(now) or record.refused():
            return None
        data = record.data
        identity = data.get("identity")
        if not data.get("_user_id") or not identity:
            return None
        decision = None
        if policy is not None and facts is not None:
            decision = policy.evaluate(facts, identity, now, normalized=True)
            if decision.outcome not in ("allowed", "public"):
                return None  # 401/403/302 and the decision's record: the view
            rules = forward_auth.rule_groups(policy, decision) if decision.outcome == "allowed" else {"groups": []}
        elif not forward_auth.allowed(identity, rules):
            return None
        gateway_url = self.app.config.get("PUBLIC_BASE_URL") or f"http://{environ.get('HTTP_HOST', '')}"
        audience = forward_auth.audience_for(args, headers, gateway_url)
        if audience is None:  # a malformed audience=: the view answers 400
            return None
        claim_headers = forward_auth.host_headers(policy, facts)
        key = forward_auth.answer_key(forward_auth.session_key(id_hash, identity), audience, rules, decision,
                                      claim_headers)
        answer = forward_auth.cached_answer(key)
        if answer is None:
            return None
        reuse = reuse_seconds(self._reuse_limit(), now, policy=policy, facts=facts, decision=decision,
                              identity=identity, session_until=record.deadline())
        return [*answer.headers, reuse_header(reuse)], metrics.policy_label(args, policies)

    def _reuse_limit(self) -> int:
        return int(self.app.config.get("FORWARD_AUTH_CACHE_SECONDS", 0))


def install(app: Flask) -> None:
    app.wsgi_app = ForwardAuthFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
