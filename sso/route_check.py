"""The access rules' decision for a URL of a protected app, as the person in this session would get it from
/auth/verify for `GET <url>`: used by /auth/start (step-up), /auth/denied and Request access. The URL must already
be checked (`sso.forward_auth.safe_return_url`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import request

from policies.evaluate import Decision, RequestFacts, evaluate


def facts_for(url: str, method: str = "GET") -> RequestFacts:
    parts = urlsplit(url)
    return RequestFacts(method=method, host=(parts.hostname or "").rstrip(".").lower(), path=parts.path or "/",
                        client_ip=request.remote_addr or "")


def decision_for(url: str, identity: dict[str, Any] | None) -> tuple[Decision, str, str]:
    """(decision, host, path) for GET `url` with this identity (None: not signed in)."""
    facts = facts_for(url)
    return evaluate(facts, identity or None), facts.host, facts.path
