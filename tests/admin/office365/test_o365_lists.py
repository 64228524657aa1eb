"""The Office 365 list pages at scale (issue 12 points 1, 2 and 6): totals, search, filters, sort, page size,
signed Previous/Next cursors, "is X a member?", the streamed members export and a user's groups paged; a page
that Graph keeps waiting ends at the page deadline with a Retry button, never a 500."""

from __future__ import annotations

import csv
import html
import io
import re

from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db
from core.models import AuditEvent
from emulator.server import EmulatorHandle
from office365.graph import GraphClient, RetryPolicy
from tests.o365_ops_helpers import Tenant, authorized_datasource


def _page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return html.unescape(response.get_data(as_text=True))


def _rows(page: str, table: str) -> list[str]:
    body = page.split(f'id="{table}"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [row for row in re.findall(r"<tr>(.*?)</tr>", body, re.S) if 'class="text-muted"' not in row]


def _names(page: str, table: str) -> list[str]:
    cells = (re.search(r'<td class="col-name">(.*?)</td>', row, re.S) for row in _rows(page, table))
    return [re.sub(r"<[^>]+>", "", cell.group(1)).split("\n")[0].strip() for cell in cells if cell]


def _link(page: str, link_id: str) -> str | None:
    found = re.search(rf'id="{link_id}"[^>]*href="([^"]+)"', page)
    return found.group(1) if found else None


def _total(page: str, element: str = "list-total") -> int:
    found = re.search(rf'id="{element}"><strong>([\d,]+)</strong>', page)
    assert found, page[:3000]
    return int(found.group(1).replace(",", ""))


def _audit(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _users(tenant: Tenant, where: str = "1", *args: object) -> int:
    return tenant.one(f"SELECT count(*) FROM users WHERE {where}", *args)


def test_user_list_totals_filters_sort_page_size_and_cursors(admin_client: FlaskClient, emulator: EmulatorHandle,
                                                             app: Flask, tenant: Tenant) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    base = f"/admin/datasources/{ds.id}/o365/users"
    page = _page(admin_client, base)
    assert _total(page) == _users(tenant) and len(_rows(page, "o365-users-table")) == 50

    page = _page(admin_client, f"{base}?size=25&sort=-displayName")
    names = _names(page, "o365-users-table")
    assert len(names) == 25 and names == sorted(names, key=str.lower, reverse=True)
    # Next, Next, Previous, Previous: back where we started; no Graph URL in the page, only signed cursors.
    second = _page(admin_client, _link(page, "next-page") or "")
    assert "page 2 of 2" in second and "https://127.0.0.1" not in second and "skiptoken" not in second
    assert _total(second) == _users(tenant)  # the total Graph gave on page 1 stays on the later pages
    back = _page(admin_client, _link(second, "previous-page") or "")
    assert _names(back, "o365-users-table") == names
    assert _link(back, "previous-page") is None and _link(back, "first-page") is None

    disabled = _page(admin_client, f"{base}?filter=disabled")
    assert _total(disabled) == _users(tenant, "account_enabled = 0") == len(_rows(disabled, "o365-users-table"))
    licensed = _total(_page(admin_client, f"{base}?filter=licensed"))
    unlicensed = _total(_page(admin_client, f"{base}?filter=unlicensed"))
    assert licensed + unlicensed == _users(tenant) and unlicensed >= 3
    sales = _page(admin_client, f"{base}?department=Sales&filter=enabled&sort=displayName")
    assert _total(sales) == _users(tenant, "department = 'Sales' AND account_enabled = 1")
    found = _page(admin_client, f"{base}?q=ann&sort=displayName")
    assert _names(found, "o365-users-table") == ["Ann O'Neil", "Anne Wallace", "Annette Hill"]

    # A cursor made for another query, or edited, is refused in words; so are bad sizes, sorts and filters.
    cursor = re.search(r"cursor=([^&\"]+)", _link(page, "next-page") or "").group(1)  # type: ignore[union-attr]
    assert "This page link is not valid here" in _page(admin_client, f"{base}?size=50&cursor={cursor}")
    assert "This page link is not valid here" in _page(admin_client, f"{base}?size=25&sort=-displayName"
                                                                      f"&cursor={cursor[:-2]}xx")
    assert "Choose a page size of 25, 50, 100, 200." in _page(admin_client, f"{base}?size=7")
    assert "Sort by one of" in _page(admin_client, f"{base}?sort=jobTitle")
    assert 'Unknown filter "nope"' in _page(admin_client, f"{base}?filter=nope")


def test_group_list_type_filter_sort_and_total(admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask,
                                               tenant: Tenant) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    base = f"/admin/datasources/{ds.id}/o365/groups"
    page = _page(admin_client, f"{base}?size=25")
    assert _total(page) == tenant.one("SELECT count(*) FROM groups") and len(_rows(page, "o365-groups-table")) == 25
    unified = _page(admin_client, f"{base}?filter=type:microsoft365&sort=-displayName")
    assert _total(unified) == tenant.one("SELECT count(*) FROM groups WHERE group_types LIKE '%Unified%'")
    names = _names(unified, "o365-groups-table")
    assert names == sorted(names, key=str.lower, reverse=True) and "Microsoft 365" in unified
    security = _page(admin_client, f"{base}?filter=type:security&q=fin")
    assert "Mail-enabled security" not in security.split('id="o365-groups-table"')[1]


def test_group_members_search_is_member_and_paging(admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask,
                                                   tenant: Tenant) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    gid = tenant.group("All Company")
    base = f"/admin/datasources/{ds.id}/o365/groups/{gid}"
    everyone = len(tenant.members(gid))
    page = _page(admin_client, f"{base}?size=25")
    assert _total(page, "member-total") == everyone and len(_rows(page, "group-members")) == 25
    second = _page(admin_client, _link(page, "next-page") or "")
    assert _link(second, "previous-page") and len(_rows(second, "group-members")) == 25
    found = _page(admin_client, f"{base}?q=megan")
    assert _total(found, "member-total") == 1 and "Megan Bowen" in _names(found, "group-members")[0]
    disabled = _page(admin_client, f"{base}?filter=disabled&sort=displayName")
    assert _total(disabled, "member-total") == 3

    megan = tenant.user("megan.bowen@contoso.example")
    legal = tenant.group("Legal")
    yes = _page(admin_client, f"/admin/datasources/{ds.id}/o365/groups/{gid}?member=megan.bowen@contoso.example")
    assert "Yes:" in yes and "is a direct member" in yes
    assert megan not in tenant.members(legal)
    no = _page(admin_client, f"/admin/datasources/{ds.id}/o365/groups/{legal}?member={megan}")
    assert "No:" in no and "is not a direct member" in no
    bad = _page(admin_client, f"{base}?member=nobody")
    assert "Type a user's object id or user principal name" in bad


def test_is_member_check_keeps_the_members_search(admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask,
                                                  tenant: Tenant) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    gid = tenant.group("All Company")
    base = f"/admin/datasources/{ds.id}/o365/groups/{gid}"
    searched = _page(admin_client, f"{base}?q=megan&filter=enabled&sort=displayName&size=25")
    form = searched.split('id="is-member-form"', 1)[1].split("</form>", 1)[0]
    carried = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
    assert carried == {"q": "megan", "filter": "enabled", "sort": "displayName", "size": "25"}
    # the check (the form's fields as a browser sends them) answers and still shows the searched members
    checked = _page(admin_client, f"{base}?member=megan.bowen@contoso.example&"
                                  + "&".join(f"{k}={v}" for k, v in carried.items()))
    assert "Yes:" in checked and _total(checked, "member-total") == 1
    assert 'id="q" name="q" value="megan"' in checked
    assert '<input type="hidden" name="member" value="megan.bowen@contoso.example">' in checked.split(
        'id="member-search-form"', 1)[1].split("</form>", 1)[0]


def test_members_export_streams_every_member_page_by_page(admin_client: FlaskClient, emulator: EmulatorHandle,
                                                          app: Flask, tenant: Tenant, monkeypatch) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    gid = tenant.group("Retail")
    conn = tenant.conn()
    rows = [(f"{n:08x}-0000-4000-8000-{n:012x}", n) for n in range(3000)]
    tenant_id = conn.execute("SELECT tenant_id FROM groups WHERE id = ?", (gid,)).fetchone()[0]
    conn.executemany(
        "INSERT INTO users (id, tenant_id, display_name, given_name, surname, user_principal_name, mail, "
        "account_enabled, created, extra) SELECT ?, ?, ?, 'Bulk', ?, ?, ?, 1, created, '{}' FROM users LIMIT 1",
        [(uid, tenant_id, f"Bulk User {n:04d}", f"User{n:04d}", f"bulk{n:04d}@contoso.example",
          f"bulk{n:04d}@contoso.example") for uid, n in rows])
    conn.executemany("INSERT INTO memberships (group_id, member_id, relation) VALUES (?, ?, 'member')",
                     [(gid, uid) for uid, _ in rows])
    conn.commit()
    expected = len(tenant.members(gid))
    assert expected > 3000

    pages = []
    original = GraphClient.get_page

    def counting(self, path_or_cursor, **kw):  # type: ignore[no-untyped-def]
        pages.append(path_or_cursor)
        return original(self, path_or_cursor, **kw)

    monkeypatch.setattr(GraphClient, "get_page", counting)
    group_page = _page(admin_client, f"/admin/datasources/{ds.id}/o365/groups/{gid}")
    assert f"Export {expected:,} members (CSV)" in group_page
    pages.clear()
    response = admin_client.get(f"/admin/datasources/{ds.id}/o365/groups/{gid}/members.csv")
    assert response.status_code == 200 and response.is_streamed and response.mimetype == "text/csv"
    chunks = iter(response.response)
    header = next(chunks)
    assert header.startswith(b"id,type,displayName") and pages == []  # nothing read before the body is sent
    first_row = next(chunks)
    assert len(pages) == 1 and first_row.count(b"\n") == 1  # one Graph page (999 members) held, not the group
    body = header + first_row + b"".join(chunks)
    assert len(pages) == -(-expected // 999)
    lines = list(csv.reader(io.StringIO(body.decode())))
    assert len(lines) - 1 == expected and {line[0] for line in lines[1:]} == tenant.members(gid)


def test_users_export_streams_the_tenant_or_the_lists_search(admin_client: FlaskClient, emulator: EmulatorHandle,
                                                              app: Flask, tenant: Tenant, monkeypatch) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    conn = tenant.conn()
    tenant_id = conn.execute("SELECT tenant_id FROM users LIMIT 1").fetchone()[0]
    conn.executemany(
        "INSERT INTO users (id, tenant_id, display_name, user_principal_name, mail, account_enabled, created) "
        "SELECT ?, ?, ?, ?, ?, 1, created FROM users LIMIT 1",
        [(f"{n:08x}-0000-4000-8000-{n:012x}", tenant_id, f"Export User {n:04d}", f"export{n:04d}@contoso.example",
          f"export{n:04d}@contoso.example") for n in range(2100)])
    conn.commit()
    everyone = {r[0] for r in conn.execute("SELECT id FROM users")}
    pages: list[object] = []
    original = GraphClient.get_page

    def counting(self, path_or_cursor, **kw):  # type: ignore[no-untyped-def]
        pages.append(path_or_cursor)
        return original(self, path_or_cursor, **kw)

    monkeypatch.setattr(GraphClient, "get_page", counting)
    base = f"/admin/datasources/{ds.id}/o365"
    listed = _page(admin_client, f"{base}/users?sort=-createdDateTime&size=25")
    link = re.search(r'id="export-users" href="([^"]+)" download>Export ([\d,]+) users \(CSV\)', listed)
    assert link and link.group(1) == f"{base}/users.csv" and int(link.group(2).replace(",", "")) == len(everyone)
    assert "(3 Graph requests)" in listed.split('id="users-export"', 1)[1].split("</div>", 1)[0]

    pages.clear()
    response = admin_client.get(link.group(1))
    assert response.status_code == 200 and response.is_streamed and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="users.csv"'
    chunks = iter(response.response)
    header = next(chunks)
    assert header.startswith(b"id,displayName,userPrincipalName,mail") and pages == []
    first = next(chunks)
    assert len(pages) == 1 and first.count(b"\n") == 1  # one Graph page held at a time, not the tenant
    lines = list(csv.reader(io.StringIO((header + first + b"".join(chunks)).decode())))
    assert len(pages) == 3 and len(lines) - 1 == len(everyone) and {line[0] for line in lines[1:]} == everyone

    # the list's search and filters go with it (not its sort or page size); a failure part-way says so in the file
    searched = _page(admin_client, f"{base}/users?q=export&filter=enabled&sort=displayName")
    href = html.unescape(re.search(r'id="export-users" href="([^"]+)"', searched).group(1))  # type: ignore[union-attr]
    assert href == f"{base}/users.csv?q=export&filter=enabled"
    response = admin_client.get(href)
    assert response.headers["Content-Disposition"] == 'attachment; filename="users-matching.csv"'
    chunks = iter(response.response)
    body = next(chunks) + next(chunks)
    tenant.fault(kind="error", status=403, path="/v1.0/users")
    body += b"".join(chunks)
    lines = list(csv.reader(io.StringIO(body.decode())))
    assert len(lines) - 2 == 999 and all(line[1].startswith("Export User") for line in lines[1:-1])
    assert lines[-1][1].startswith("EXPORT INCOMPLETE:")
    assert [e.target for e in _audit("o365.export_users")] == [
        "every user", 'all users matching "export" filtered by enabled']


def test_user_page_lists_every_group_in_pages(admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask,
                                              tenant: Tenant) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    adele = tenant.user("adele.vance@contoso.example")
    conn = tenant.conn()
    conn.execute("INSERT OR IGNORE INTO memberships (group_id, member_id, relation) "
                 "SELECT id, ?, 'member' FROM groups ORDER BY seq LIMIT 120", (adele,))
    conn.commit()
    total = tenant.one("SELECT count(*) FROM memberships WHERE member_id = ? AND relation = 'member'", adele)
    assert total >= 120
    base = f"/admin/datasources/{ds.id}/o365/users/{adele}"
    seen: list[str] = []
    page = _page(admin_client, base)
    assert f"Groups 1–50 of {total}" in page
    while True:
        seen += re.findall(r'<li class="list-group-item[^"]*"><a [^>]*>([^<]+)</a>', page.split('id="user-groups"')[1]
                           .split("</ul>")[0])
        following = _link(page, "groups-next")
        if not following:
            break
        page = _page(admin_client, following)
    assert len(seen) == total == len(set(seen))
    assert _link(page, "groups-previous") and _link(page, "groups-first")


def test_a_page_stops_waiting_at_the_page_deadline_and_offers_retry(admin_client: FlaskClient,
                                                                     emulator: EmulatorHandle, app: Flask,
                                                                     tenant: Tenant) -> None:
    ds = authorized_datasource(admin_client, emulator, app)
    app.config["GRAPH_RETRY"] = RetryPolicy(max_attempts=8, retry_after_cap=120.0, deadline=90.0)
    app.config["O365_PAGE_DEADLINE"] = 2.0
    tenant.fault(kind="throttle", path="/v1.0/users", retry_after=60, seconds=30)
    page = _page(admin_client, f"/admin/datasources/{ds.id}/o365/users?q=ann")
    # Graph asked for 60 s; the page had 2: it says so at once (one attempt), with a Retry of the same list.
    assert "throttling" in page and "after 1 attempts" in page
    assert re.search(r'id="retry" href="/admin/datasources/\d+/o365/users\?q=ann"', page)


def test_every_user_and_group_page_stops_at_the_deadline_when_graph_hangs(admin_client: FlaskClient,
                                                                          emulator: EmulatorHandle, app: Flask,
                                                                          tenant: Tenant) -> None:
    """Graph requests that hang (the emulator holds each 5 s) never hold a user or group page past the page
    deadline: the page answers, says what happened, and offers a Retry of itself."""
    ds = authorized_datasource(admin_client, emulator, app)
    app.config["O365_PAGE_DEADLINE"] = 1.5
    base = f"/admin/datasources/{ds.id}/o365"
    gid, adele = tenant.group("All Company"), tenant.user("adele.vance@contoso.example")
    for url, path in ((f"{base}/users?q=a", "/v1.0/users"), (f"{base}/users/{adele}", f"/v1.0/users/{adele}"),
                      (f"{base}/groups", "/v1.0/groups"), (f"{base}/groups/{gid}", f"/v1.0/groups/{gid}"),
                      (f"{base}/groups/{gid}?member=adele.vance@contoso.example", f"/v1.0/groups/{gid}/members")):
        tenant.control("DELETE", "faults")
        tenant.fault(kind="delay", delay_ms=5_000, path=path)
        page = _page(admin_client, url)
        faults = tenant.control("GET", "faults").json()
        assert [f["hits"] >= 1 for f in (faults if isinstance(faults, list) else faults["faults"])] == [True], url
        said = re.search(r'id="operation-error"><span class="me-auto">([^<]*)', page)
        assert said and said.group(1).startswith("Could not reach Microsoft Graph"), url
        assert f'id="retry" href="{url}' in page, url
    tenant.control("DELETE", "faults")


def test_list_pages_offer_their_rows_and_all_matching_to_the_bulk_preview(
        admin_client: FlaskClient, emulator: EmulatorHandle, app: Flask, tenant: Tenant) -> None:
    """docs/selection.md: ticked rows post `ids`; "all N matching" posts the list's own `source`, `q`, `filter`
    tokens and `count` to the bulk preview."""
    ds = authorized_datasource(admin_client, emulator, app)
    preview = f"/admin/datasources/{ds.id}/o365/bulk/preview"
    page = _page(admin_client, f"/admin/datasources/{ds.id}/o365/users?q=a&filter=enabled&department=Sales")
    rows_form = page.split('id="selection-form"')[0].rsplit("<form", 1)[1] + page.split('id="selection-form"')[1]
    assert f'action="{preview}"' in rows_form.split(">", 1)[0]
    boxes = re.findall(r'name="ids" value="([0-9a-f-]{36})" form="selection-form"', page)
    assert len(boxes) == len(_rows(page, "o365-users-table")) > 0
    everything = page.split('id="select-all-form"', 1)[1].split("</form>", 1)[0]
    count = _total(page)
    for field in ('name="source" value="users"', 'name="q" value="a"', 'name="filter" value="enabled"',
                  'name="filter" value="department:Sales"', f'name="count" value="{count}"'):
        assert field in everything, field
    for action in ("add", "remove", "assign-licence", "remove-licence"):
        assert f'name="action" value="{action}"' in everything

    gid = tenant.group("All Company")
    group = _page(admin_client, f"/admin/datasources/{ds.id}/o365/groups/{gid}?q=m")
    everything = group.split('id="select-all-form"', 1)[1].split("</form>", 1)[0]
    assert f'name="source" value="group:{gid}"' in everything and 'name="q" value="m"' in everything
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', everything)
    assert token
    answer = admin_client.post(preview, data={"csrf_token": token.group(1), "action": "remove", "target": gid,
                                              "source": f"group:{gid}", "q": "m",
                                              "count": str(_total(group, "member-total"))})
    assert answer.status_code == 303 and "/bulk/jobs/" in answer.headers["Location"], answer.status_code
