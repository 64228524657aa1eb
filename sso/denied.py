"""`/auth/denied?rd=<url>`: the page a person denied by an access rule sees (redirect mode, or the proxy's
`error_page 403`): what was denied and why in words, from the rules evaluated again for `GET rd` with this session,
a **Request access** button for each group that would let them in, and the decisions on their earlier requests.
`POST /auth/access-requests` is that button."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from sso import bp
from sso.access_requests import can_request, my_requests, open_request, unseen_outcomes
from sso.forms import ActionForm
from sso.forward_auth import safe_return_url
from sso.route_check import decision_for


@bp.get("/auth/denied")
def denied() -> tuple[str, int] | str:
    target = safe_return_url(request.args.get("rd"))
    signed_in = bool(session.get("_user_id") and session.get("identity") and current_user.is_authenticated)
    identity = session.get("identity") if signed_in else None
    if target is None:
        return render_template("sso/denied.html", target=None, decision=None, signed_in=signed_in), 400
    decision, host, path = decision_for(target, identity)
    groups, requests, outcomes, may_request = [], {}, [], False
    if signed_in:
        user = current_user._get_current_object()
        groups = [dict(g) for g in decision.granting_groups or ()] if decision.outcome == "denied" else []
        may_request = bool(groups) and can_request(user, identity)
        requests = my_requests(user, [g["id"] for g in groups])
        outcomes = unseen_outcomes(user)
    status = 403 if decision.outcome == "denied" else 200
    provider = (identity or {}).get("provider")
    refresh = None  # an approval just seen: sign in again so the session holds the new group
    if signed_in and provider and provider != "local" and any(o.status == "approved" for o in outcomes):
        refresh = url_for("sso.sso_login", name=provider, next=url_for("sso.forward_start", rd=target))
    return render_template("sso/denied.html", target=target, host=host, path=path, decision=decision,
                           signed_in=signed_in, groups=groups, requests=requests, outcomes=outcomes,
                           may_request=may_request, form=ActionForm(), refresh=refresh), status


@bp.post("/auth/access-requests")
@login_required
def request_access() -> Response:
    """Request access: the rules are evaluated again for `rd`; the group must be one that would grant it."""
    rd = request.form.get("rd", "")
    target = safe_return_url(rd)
    back = redirect(url_for("sso.denied", rd=target) if target else url_for("sso.home"))
    if not ActionForm().validate_on_submit():
        flash("The form expired. Try again.", "danger")
        return back
    if target is None:
        flash("That address cannot be checked here.", "danger")
        return back
    identity = session.get("identity") or {}
    decision, host, path = decision_for(target, identity)
    group = next((dict(g) for g in decision.granting_groups or () if g.get("id") == request.form.get("group_id")),
                 None)
    user = current_user._get_current_object()
    if group is None or decision.outcome != "denied":
        flash("Joining that group would not give you access to this page; nothing was requested.", "warning")
        return back
    if not can_request(user, identity):
        flash("Your account cannot be added to Office 365 groups from here; ask an administrator.", "warning")
        return back
    req, created = open_request(user, identity, group, host=host, path=path, rule_name=decision.rule_name or "",
                                reason=decision.reason or "")
    if created:
        flash(f"Access requested: an owner of {req.group_name} or an Administrator will decide. You will see the "
              "answer on this page and on your home page.", "success")
    else:
        flash(f"You already asked to join {req.group_name}; the request is waiting for a decision.", "info")
    return back
