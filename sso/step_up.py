"""Step-up at /auth/start: when the rules say `step_up` for the URL the person is going back to (an authentication
context missing from the session's `acrs`, or a sign-in older than the route allows), start exactly one more
sign-in with the same provider, asking for `acrs` with the OIDC `claims` parameter and/or `max_age`
(docs/microsoft.md §1.9). The callback (`sso.signin.step_up_problem`) checks the new ID token before the session
keeps its `acrs` and `auth_time`, and sends the browser straight back to the URL. /auth/verify reads the session,
not the URL, so editing an address skips nothing.
"""

from __future__ import annotations

import time
from typing import Any

from flask import redirect, session, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from core.extensions import db
from sso.models import SsoProvider
from sso.route_check import decision_for
from sso.settings import current_settings, provider_usable
from sso.signin import STEP_UP_KEY, begin

REPEAT_WINDOW = 120  # seconds: a step-up just finished for this URL is not started again (no loop)


def begin_if_needed(target: str) -> Response | tuple[str, int] | None:
    """The step-up redirect for `target`, /auth/denied when it cannot be done, or None (nothing to step up)."""
    identity: dict[str, Any] = session.get("identity") or {}
    decision, _host, _path = decision_for(target, identity)
    if decision.outcome != "step_up":
        return None
    done = session.get(STEP_UP_KEY) or {}
    if done.get("url") == target and time.time() - float(done.get("at") or 0) < REPEAT_WINDOW:
        return redirect(url_for("sso.denied", rd=target))  # the step-up just done was not enough: explain
    sso = session.get("sso") or {}
    provider = db.session.scalar(select(SsoProvider).filter_by(name=sso.get("provider"))) if sso else None
    if provider is None or not provider.enabled or not current_settings().enabled or not provider_usable(provider):
        return redirect(url_for("sso.denied", rd=target))  # a password sign-in cannot show acrs: explain
    contexts = sorted(set(identity.get("acrs") or []) | ({decision.auth_context} if decision.auth_context else set()))
    # the contexts the session already holds are asked for again, so the new token keeps them
    step_up = {"user_id": int(session["_user_id"]), "auth_context": decision.auth_context, "acrs": contexts,
               "max_age": decision.max_age_seconds}
    login_hint = identity.get("user") if provider.kind == SsoProvider.OFFICE365 else None
    return begin(provider, next_path=None, login_hint=str(login_hint)[:256] if login_hint else None,
                 domain_hint=provider.domain_hint, step_up=step_up, return_url=target)

