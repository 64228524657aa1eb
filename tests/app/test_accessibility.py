"""Every page in a real Chromium, at desktop (1280 px) and phone (390 px) width, checked with axe-core against the
WCAG 2.1 A and AA rules (0 violations), with no sideways scrolling at phone width, a focus ring of at least 3:1 on
every focus stop, and form errors tied to their fields (aria-invalid, aria-describedby, focus on the first).

axe-core comes from npm (tests/a11y/package.json, installed by tools/test-prereqs.sh) and is added to each page
with Playwright's add_script_tag; the context bypasses the page's CSP only so that this test script may run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect

from core.extensions import db
from emulator.server import EmulatorHandle
from jobs.models import ScheduledTask
from jobs.runner import create_run
from sso.models import SignInAttempt
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from tests.o365_helpers import emulator_env
from tests.o365_ops_helpers import Tenant, authorized_datasource

pytestmark = [pytest.mark.browser, pytest.mark.one_backend]

A11Y = Path(__file__).resolve().parent.parent / "a11y"
AXE_JS = A11Y / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
DESKTOP, PHONE = 1280, 390

FOCUS_RING_JS = (A11Y / "focus-ring.js").read_text()
ERRORS_JS = (A11Y / "form-errors.js").read_text()
# What sticks out past the right edge of the window (the outermost such elements), to say what to fix.
WIDEST_JS = """() => [...document.querySelectorAll('body *')]
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1
                  && el.parentElement.getBoundingClientRect().right <= window.innerWidth + 1)
  .slice(0, 4).map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '.' + [...el.classList].join('.')
                   + ' ' + Math.round(el.getBoundingClientRect().right) + 'px')"""


@dataclass
class View:
    name: str
    open: Callable[[Page], None]
    form_errors: bool = False


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    return {**emulator_env(emulator), "ALLOWED_REDIRECT_DOMAINS": ".example.com"}


def _goto(base: str, path: str) -> Callable[[Page], None]:
    def open_page(page: Page) -> None:
        response = page.goto(base + path)
        assert response is not None and response.ok, f"{path}: {response.status if response else 'no answer'}"
    return open_page


def _submit(base: str, path: str, button: str, fill: dict[str, str] | None = None) -> Callable[[Page], None]:
    def open_page(page: Page) -> None:
        _goto(base, path)(page)
        for label, value in (fill or {}).items():
            page.get_by_label(label, exact=True).fill(value)
        page.locator("main").get_by_role("button", name=button, exact=True).click()
        page.wait_for_load_state("load")
    return open_page


def _seed(app: Flask, client: FlaskClient, emulator: EmulatorHandle) -> dict[str, object]:
    """What the pages show: an authorized data source, a scheduled import with a run, sign-in attempts."""
    ds = authorized_datasource(client, emulator, app)
    tenant = Tenant(emulator)
    task = ScheduledTask(name="Nightly import", kind=ScheduledTask.KIND_IMPORT, datasource_id=ds.id, schedule="daily",
                         at_minute=180, owner=ADMIN_EMAIL)
    db.session.add(task)
    for outcome, reason in (("failure", "audience: the token is for another app"), ("success", "signed in")):
        db.session.add(SignInAttempt(reference=outcome[:4].upper(), provider="contoso", outcome=outcome, reason=reason,
                                     username="adele.vance@contoso.example", checks={"aud": "0000-1111", "iss": "x"},
                                     redirect_uri="http://127.0.0.1/sso/callback"))
    db.session.commit()
    _access_requests(ds.id, tenant)
    _live_access(ds.id)
    _finance_rules(tenant)
    rule_id = _access_policies(tenant)
    run = create_run(kind=task.kind, datasource_id=ds.id, trigger="manual", actor=ADMIN_EMAIL, task=task)
    licensed = tenant.conn().execute("SELECT user_id, sku_id FROM user_licenses ORDER BY user_id LIMIT 1").fetchone()
    legal = tenant.group("Legal")
    bulk_preview, bulk_done = _bulk_jobs(ds.id, legal, sorted(tenant.members(legal)))
    return {"ds": ds.id, "task": task.id, "run": run.id, "bulk_preview": bulk_preview, "bulk_done": bulk_done,
            "user": tenant.user("megan.bowen@contoso.example"),
            "licensed_user": licensed[0], "sku": licensed[1], "group": legal, "rule": rule_id,
            "member": sorted(tenant.members(legal))[0], "admin_id": db.session.execute(
                db.text("SELECT id FROM users WHERE email = :e"), {"e": ADMIN_EMAIL}).scalar_one()}


def _access_requests(ds_id: int, tenant: Tenant) -> None:
    """One request waiting for a decision and one refused, for Access requests."""
    from core.models import User
    from sso.models import AccessRequest

    adele = User(email="adele.vance@contoso.example", display_name="Adele Vance")
    db.session.add(adele)
    db.session.flush()
    for name, status in (("Legal", "pending"), ("Retail", "refused")):
        db.session.add(AccessRequest(
            requester_id=adele.id, requester_label=adele.email, datasource_id=ds_id, group_id=tenant.group(name),
            group_name=name, host="finance.example.com", path="/reports/2026/q4", rule_name="Finance reports",
            reason=f"not in group {name}", status=status, decided_by=ADMIN_EMAIL if status != "pending" else "",
            decided_at=db.func.now() if status != "pending" else None,
            message="Finance staff only" if status != "pending" else ""))
    db.session.commit()


def _live_access(ds_id: int) -> None:
    """Live access on with notifications, one subscription renewed lately and one Graph asked to reauthorize,
    fallback polling on for a reason, and refused notifications."""
    from datetime import timedelta

    from core.models import utcnow
    from live.models import GraphSubscription, LiveAccess, RefusedNotification

    now = utcnow()
    db.session.add(LiveAccess(datasource_id=ds_id, enabled=True, notifications=True, last_notification_at=now,
                              notifications_received=1234, notifications_refused=3, notifications_replayed=1,
                              lag_seconds=3.5, last_round_at=now, sessions_ended=2, sessions_refreshed=5,
                              fallback_reason="Microsoft reported missed notifications at 2026-12-04 21:00 UTC: a "
                                              "delta round catches up."))
    for resource, status in (("users", "active"), ("groups", "reauthorize")):
        db.session.add(GraphSubscription(datasource_id=ds_id, resource=resource,
                                         subscription_id=f"0b0b0b0b-1c1c-4d4d-8e8e-{resource:0>12}",
                                         client_state="x", status=status,
                                         expires_at=now + timedelta(days=20), renewed_at=now,
                                         last_lifecycle_event="reauthorizationRequired" if status != "active" else "",
                                         last_lifecycle_at=now if status != "active" else None))
    db.session.add(RefusedNotification(datasource_id=ds_id, reason="client_state", subscription_id="0b0b0b0b",
                                       client_ip="198.51.100.66"))
    db.session.add(RefusedNotification(reason="malformed", detail="the body is not JSON", client_ip="2001:db8::1"))
    db.session.commit()


def _finance_rules(tenant: Tenant) -> None:
    """Access rules that refuse the signed-in Administrator a page, so the denied page has something to say."""
    from policies import service as policies

    policies.save({"hosts": [{"host": "finance.example.com", "default": "signed_in"}], "rules": [
        {"id": "r-approvals", "name": "Finance approvals", "enabled": True, "host": "finance.example.com",
         "paths": ["/approvals/"], "methods": [], "networks": [], "action": "allow",
         "criteria": {"groups_any": [{"id": tenant.group("Legal"), "name": "Legal"}]}}]}, actor=ADMIN_EMAIL)


def _access_policies(tenant: Tenant) -> str:
    """Two versions of three rules and a host default, and a few decisions that were not allowed."""
    from policies import service
    from policies.models import AccessDecision

    legal = {"id": tenant.group("Legal"), "name": "Legal"}
    _, document = service.current()  # after the finance rules the denied page uses
    document["hosts"].append({"host": "locked.example.com", "default": "deny"})
    document["rules"] += [
        {"id": "r-health", "name": "Health checks", "host": "*", "paths": ["/healthz"], "action": "public"},
        {"id": "r-legal", "name": "Legal documents", "host": "legal.example.com", "paths": ["/cases/*"],
         "methods": ["GET", "POST"], "criteria": {"groups_any": [legal], "max_auth_age_minutes": 15}},
        {"id": "r-block", "name": "No admin from outside", "host": "*.example.com", "paths": ["/admin/"],
         "networks": ["203.0.113.0/24"], "action": "deny", "enabled": False}]
    service.save(document, ADMIN_EMAIL, "first rules")
    document["rules"][-2]["criteria"]["app_roles"] = ["Reader"]
    service.save(document, ADMIN_EMAIL)
    for outcome, reason in (("denied", "not in group Legal"), ("step_up", "signed in 3 h ago; this path needs 15 min")):
        db.session.add(AccessDecision(user_label="adele.vance@contoso.example", session_hash="0123456789ab",
                                      host="legal.example.com", path="/cases/2026/a-very-long-case-name-that-wraps",
                                      method="GET", rule_id="r-legal", rule_name="Legal documents", outcome=outcome,
                                      criterion="groups_any", reason=reason, granting_groups=[legal],
                                      policy_version=2))
    db.session.commit()
    return "r-legal"


def _bulk_jobs(ds_id: int, group_id: str, members: list[str]) -> tuple[int, int]:
    """A previewed bulk job and a finished, partly failed one (as a worker leaves it)."""
    from bulk.models import BulkItem, BulkJob

    jobs = []
    for status, result in (("previewed", ""), ("partial", "partial: 2 added, 1 failed")):
        job = BulkJob(datasource_id=ds_id, action="add", target_id=group_id, target_name="Legal",
                      selection={"ids": 4}, unchanged={"already_member": 1}, actor=ADMIN_EMAIL, status=status,
                      total=3, result=result)
        db.session.add(job)
        db.session.flush()
        outcomes = [None, None, None] if status == "previewed" else ["added", "added", "failed"]
        for n, (uid, outcome) in enumerate(zip(members[:3], outcomes, strict=False)):
            db.session.add(BulkItem(job_id=job.id, position=n, object_id=uid, label=f"User {n}", outcome=outcome,
                                    message="Graph did not answer." if outcome == "failed" else None))
        jobs.append(job.id)
    db.session.commit()
    return jobs[0], jobs[1]


def _bulk_target(base: str, o365: str, member: object) -> Callable[[Page], None]:
    """The page a list's selection lands on when no group was chosen yet (a POST from a list page)."""
    def open_page(page: Page) -> None:
        _goto(base, f"{o365}/bulk/members")(page)
        with page.expect_navigation():
            page.evaluate("""([url, id]) => { const f = document.getElementById('bulk-members-form');
                f.action = url;
                f.insertAdjacentHTML('beforeend', '<input type="hidden" name="ids" value="' + id + '">');
                window.setTimeout(() => f.submit(), 0); }""", [f"{o365}/bulk/preview", str(member)])
        page.wait_for_load_state("load")
    return open_page


def _views(base: str, ids: dict[str, object]) -> list[View]:
    ds, o365 = ids["ds"], f"/admin/datasources/{ids['ds']}/o365"
    pages = {
        "home": "/", "my sessions": "/sessions", "preferences": "/preferences", "administration": "/admin/",
        "data sources": "/admin/datasources", "add a data source": "/admin/datasources/new",
        "new Office 365 data source": "/admin/datasources/new/office365", "data source": f"/admin/datasources/{ds}",
        "data source security": f"/admin/datasources/{ds}/security",
        "delete data source": f"/admin/datasources/{ds}/delete",
        "live access": f"/admin/datasources/{ds}/live-access",
        "users": "/admin/users", "new user": "/admin/users/new", "edit user": f"/admin/users/{ids['admin_id']}",
        "delete user": f"/admin/users/{ids['admin_id']}/delete",
        "scheduled tasks": "/admin/scheduled-tasks", "new scheduled task": "/admin/scheduled-tasks/new",
        "scheduled task": f"/admin/scheduled-tasks/{ids['task']}", "run": f"/admin/scheduled-tasks/runs/{ids['run']}",
        "import settings": f"/admin/scheduled-tasks/imports/{ds}",
        "single sign-on": "/admin/sso", "sign-in diagnostics": "/admin/sso/diagnostics",
        "a user's sessions": "/admin/sso/sessions",
        "sessions of a user": f"/admin/sso/users/{ids['admin_id']}/sessions",
        "audit log": "/admin/audit", "API keys": "/admin/api-keys", "API reference": "/api/v1/docs",
        "access requests": "/admin/access-requests",
        "access policies": "/admin/access-policies", "add a rule": "/admin/access-policies/new-rule",
        "edit a rule": f"/admin/access-policies/rules/{ids['rule']}",
        "delete a rule": f"/admin/access-policies/rules/{ids['rule']}/delete",
        "access policy history": "/admin/access-policies/history", "access decisions": "/admin/decisions",
        "what if": "/admin/access-policies/what-if?user=adele.vance%40contoso.example&method=GET"
                   "&url=https%3A%2F%2Flegal.example.com%2Fcases%2F7&roles=Reader",
        "Office 365": "/admin/o365", "User List": f"{o365}/users", "Find Users": f"{o365}/users?q=meg",
        "user": f"{o365}/users/{ids['user']}", "Group List": f"{o365}/groups",
        "User List, filtered and sorted": f"{o365}/users?filter=enabled&filter=licensed&sort=-displayName&size=25",
        "User List, a link that is not valid": f"{o365}/users?cursor=edited",
        "Group List, by type": f"{o365}/groups?filter=type:security&sort=displayName&size=25",
        "group members searched, is-member checked": f"{o365}/groups/{ids['group']}?q=a&sort=displayName"
                                                     "&member=megan.bowen@contoso.example",
        "users, filtered and sorted": "/admin/users?active=yes&role=Administrator&sort=-created&per_page=50",
        "group": f"{o365}/groups/{ids['group']}", "Create Group": f"{o365}/groups/new",
        "Remove User From Group": f"{o365}/groups/{ids['group']}/members/{ids['member']}/remove",
        "Licence Plan List": f"{o365}/licences", "Assign Licence to User": f"{o365}/licences/assign",
        "Remove Licence from User": f"{o365}/users/{ids['licensed_user']}/licences/{ids['sku']}/remove",
        "bulk": f"{o365}/bulk", "bulk add to a group": f"{o365}/bulk/members",
        "bulk licence": f"{o365}/bulk/licences", "bulk job preview": f"{o365}/bulk/jobs/{ids['bulk_preview']}",
        "bulk job results": f"{o365}/bulk/jobs/{ids['bulk_done']}",
        "bulk job failed": f"{o365}/bulk/jobs/{ids['bulk_done']}?show=failed", "page not found": "/admin/no-such-page",
    }
    views = [View(name, _goto(base, path)) for name, path in pages.items() if name != "page not found"]
    views.append(View("page not found", lambda page: page.goto(base + pages["page not found"])))
    views.append(View("access denied", lambda page: page.goto(  # answered 403, as its outcome
        base + "/auth/denied?rd=https://finance.example.com/approvals/7")))
    views += [
        View("new data source, no name", _submit(base, "/admin/datasources/new/office365", "Save"), True),
        View("new user, bad email", _submit(base, "/admin/users/new", "Save", {"Email": "not-an-email"}), True),
        View("live access, poll interval too short", _submit(base, f"/admin/datasources/{ds}/live-access",
                                                             "Save live access",
                                                             {"Poll interval (seconds)": "5"}), True),
        View("new API key, empty", _submit(base, "/admin/api-keys", "Create key"), True),
        View("new scheduled task, empty", _submit(base, "/admin/scheduled-tasks/new", "Save"), True),
        View("what if, bad URL", _submit(base, "/admin/access-policies/what-if", "Check", {"URL": "nowhere"}), True),
        View("new access rule, bad path", _submit(base, "/admin/access-policies/new-rule", "Add rule",
                                                  {"Paths": "reports"}), True),
        View("Create Group, no name", _submit(base, f"{o365}/groups/new", "Create Group"), True),
        View("Assign Licence to User, nothing chosen", _submit(base, f"{o365}/licences/assign",
                                                                 "Assign Licence to User"), True),
        View("bulk add, nothing given", _submit(base, f"{o365}/bulk/members", "Preview"), True),
        View("bulk licence, nothing given", _submit(base, f"{o365}/bulk/licences", "Preview"), True),
        View("bulk selection, choose the group", _bulk_target(base, o365, ids["member"])),
        View("API key created", _submit(base, "/admin/api-keys", "Create key",
                                        {"User": ADMIN_EMAIL, "Name": "Report script"})),
    ]
    return views


def _check(page: Page, view: str, width: int, problems: list[str], artifacts_dir: Path) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}, "
                           "resultTypes: ['violations']})", WCAG_TAGS)
    for violation in result["violations"]:
        targets = [" ".join(node["target"]) for node in violation["nodes"]][:4]
        problems.append(f"{view} @{width}px: {violation['id']} ({violation['help']}): {targets}")
    if width == PHONE:
        scroll, inner = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        if scroll > inner:
            widest = page.evaluate(WIDEST_JS)
            problems.append(f"{view} @{width}px: scrolls sideways ({scroll} px wide in {inner} px): {widest}")
    else:
        page.keyboard.press("Tab")  # keyboard modality: focus() now shows the ring as Tab would
        ring = page.evaluate(FOCUS_RING_JS)
        problems += [f"{view} @{width}px: {item}" for item in ring["bad"]]
    safe = "".join(c if c.isalnum() else "-" for c in view.lower())
    page.screenshot(path=str(artifacts_dir / "a11y" / f"{safe}-{width}.png"), full_page=True)


def test_every_page_meets_wcag_21_aa_at_desktop_and_phone_width(browser: Browser, live_server: LiveServer,
                                                                 admin_client: FlaskClient, app: Flask,
                                                                 emulator: EmulatorHandle,
                                                                 artifacts_dir: Path) -> None:
    assert AXE_JS.is_file(), "axe-core is missing: run tools/test-prereqs.sh (npm ci in tests/a11y)"
    (artifacts_dir / "a11y").mkdir(exist_ok=True)
    ids = _seed(app, admin_client, emulator)
    base = live_server.url
    context = browser.new_context(bypass_csp=True, ignore_https_errors=True)
    page = context.new_page()
    problems: list[str] = []
    try:
        views = [View("sign in", _goto(base, "/login")),
                 View("sign in, nothing given", _submit(base, "/login", "Sign in"), True)]
        for view in views:
            view.open(page)
            _check_view(page, view, problems, artifacts_dir)
        page.get_by_label("Email").fill(ADMIN_EMAIL)
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Welcome, Ada Admin")).to_be_visible()
        for view in _views(base, ids):
            view.open(page)
            _check_view(page, view, problems, artifacts_dir)
    finally:
        context.close()
        (artifacts_dir / "a11y" / "problems.txt").write_text("\n".join(problems) + "\n")
    assert problems == [], f"{len(problems)} problems:\n" + "\n".join(problems)


def _check_view(page: Page, view: View, problems: list[str], artifacts_dir: Path) -> None:
    if view.form_errors:  # before anything else moves the focus
        problems += [f"{view.name}: {problem}" for problem in page.evaluate(ERRORS_JS)]
    for width in (DESKTOP, PHONE):
        _check(page, view.name, width, problems, artifacts_dir)


def test_templates_draw_icons_from_the_shipped_sprite_not_emoji() -> None:
    """An emoji (the old Bin, &#128465;) is an empty box without an emoji font; icons come from the sprite served
    with the page, and every icon the templates name is in it."""
    import re

    root = Path(__file__).resolve().parent.parent.parent
    sprite = (root / "static" / "icons" / "bootstrap-icons.svg").read_text()
    assert (root / "static" / "icons" / "LICENSE").is_file()
    pictographs = re.compile(r"[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF]|&#(1[2-3]\d{4}|x1F[0-9A-F]{3});", re.I)
    for template in sorted((root / "templates").rglob("*.html")):
        text = template.read_text()
        assert not pictographs.search(text), f"{template.name} draws an emoji"
        for name in re.findall(r"icon\('([a-z0-9-]+)'", text):
            assert f'<symbol id="{name}"' in sprite, f"{template.name}: icon {name} is not in the sprite"
