"""How long the proxy may reuse an `/auth/verify` answer: `X-Accel-Expires: <seconds>` on every answer.

nginx's decision cache (README's block: `proxy_cache` on the internal verify location, keyed by the whole Cookie
header plus the original method, scheme, host and URI, `proxy_ignore_headers Cache-Control Expires`) stores an
answer only for the seconds this header gives and never without it. Only a 200 (allowed, or a public path) gets
more than 0, and at most FORWARD_AUTH_CACHE_SECONDS (5 by default, 30 at most): that is how long a sign-out, a
revocation, a group removal or a new policy version can take to reach a cached "allowed" (nginx counts whole
seconds: up to one more). It is shorter when the decision itself would change sooner: the session's absolute or
idle expiry, or the allowing rule's `max_auth_age_minutes` running out (each less one second for nginx's rounding).
It is 0 when a rule that matches the host, method and path names `networks` (the decision then depends on the client
address, which the key does not hold), and on every 401, 403, 302 and 400: a denial, a step-up or "not signed in"
is decided again on the next request. The Cache-Control header stays `no-store`, so a browser or any other cache
keeps nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.evaluate import CompiledPolicy, Decision, RequestFacts

REUSE_HEADER = "X-Accel-Expires"
NO_REUSE = (REUSE_HEADER, "0")
ROUNDING = 1.0  # nginx keeps an entry until the end of the second it expires in


def reuse_seconds(limit: int, now: float, *, policy: CompiledPolicy | None = None,
                  facts: RequestFacts | None = None, decision: Decision | None = None,
                  identity: Mapping[str, Any] | None = None, session_until: float | None = None) -> int:
    """Whole seconds an allowed (or public) answer may be reused: `limit` (FORWARD_AUTH_CACHE_SECONDS), cut to
    when the session ends (`session_until`) or the allowing rule's auth-age bound runs out; 0 when the rules that
    match `facts` (normalized) by host, method and path read the client address."""
    if limit <= 0:
        return 0
    if policy is not None and facts is not None and policy.depends_on_address(facts):
        return 0
    bound = float(limit)
    if session_until is not None:
        bound = min(bound, session_until - now - ROUNDING)
    if policy is not None and decision is not None and identity:
        held = policy.holds_for(decision, identity, now)
        if held is not None:
            bound = min(bound, held - ROUNDING)
    return max(0, int(bound))


def reuse_header(seconds: int) -> tuple[str, str]:
    return REUSE_HEADER, str(seconds)
