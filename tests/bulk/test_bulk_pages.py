"""The bulk pages: a list page's selection (docs/selection.md) previewed as counts and the users that would change,
queued, run by a worker, shown with its outcome; the licence form; a throttling Graph that makes the preview stop
at its deadline with a Try again; the audit log's partial outcome filter."""

from __future__ import annotations

import re
import uuid

from flask import Flask
from flask.testing import FlaskClient

from core.models import Datasource
from jobs.runner import execute_run
from tests.bulk.test_bulk_service import users
from tests.conftest import csrf_token
from tests.o365_ops_helpers import Tenant, page_text, post_form


def _job_id(client: FlaskClient, base: str) -> int:
    page = page_text(client.get(f"{base}/bulk"))
    return int(re.findall(r"/bulk/jobs/(\d+)", page)[0])


def test_selection_preview_queue_and_results(admin_client: FlaskClient, ds: Datasource, tenant: Tenant,
                                             queued: list[int]) -> None:
    base = f"/admin/datasources/{ds.id}/o365"
    legal = tenant.group("Legal")
    fresh = users(tenant, 77)
    chosen = [*fresh, *[m for m in sorted(tenant.members(legal)) if m not in fresh][:3]]
    ghost = str(uuid.uuid4())

    page = post_form(admin_client, f"{base}/bulk/preview", {"action": "add", "ids": [*chosen, ghost],
                                                        "return_to": f"{base}/users"}, f"{base}/bulk")
    assert f"Selected: {len(chosen) + 1} users." in page and "Back to the list" in page  # pick the group first
    assert page.count('name="ids"') == len(chosen) + 1
    page = post_form(admin_client, f"{base}/bulk/preview", {"action": "add", "ids": [*chosen, ghost], "target": legal},
                 f"{base}/bulk")
    already = set(chosen) & tenant.members(legal)
    new = len(chosen) - len(already)
    assert f"{new}</strong> will be added; {len(already)} already a member; 1 not found in the tenant." in page
    assert "Nothing has been changed yet" in page and f"{new} users · page 1 of 2" in page
    assert not any(m in page for m in already)  # only the users that would change are listed
    job_id = _job_id(admin_client, base)
    assert f"{new} users · page 2 of 2" in page_text(admin_client.get(f"{base}/bulk/jobs/{job_id}?page=2"))
    assert tenant.members(legal) & set(chosen) == already  # the preview wrote nothing

    page = post_form(admin_client, f"{base}/bulk/jobs/{job_id}/queue", {}, f"{base}/bulk/jobs/{job_id}")
    assert re.search(rf"Progress: <span[^>]*>0</span> of <span[^>]*>{new}</span> done", page) and "Cancel" in page
    assert len(queued) == 1
    status = admin_client.get(f"{base}/bulk/jobs/{job_id}/status").get_json()
    assert status["status"] == "queued" and status["pending"] == new
    execute_run(queued[0])
    page = page_text(admin_client.get(f"{base}/bulk/jobs/{job_id}"))
    assert f"success: {new} added" in page and "Retry the failed" not in page
    assert set(chosen) <= tenant.members(legal)
    audit = page_text(admin_client.get("/admin/audit", query_string={"operation": "Bulk: Add to group",
                                                                 "outcome": "success"}))
    assert "o365.bulk_job" in audit and "1 in all" in audit and f"success: {new} added" in audit


def test_bad_selections_say_what_is_wrong(admin_client: FlaskClient, ds: Datasource, tenant: Tenant) -> None:
    base = f"/admin/datasources/{ds.id}/o365"
    page = post_form(admin_client, f"{base}/bulk/preview", {"action": "explode", "ids": ["x"]}, f"{base}/bulk")
    assert "The action must be add, remove, assign-licence or remove-licence." in page
    page = post_form(admin_client, f"{base}/bulk/preview", {"action": "add"}, f"{base}/bulk")
    assert "Select at least one user" in page
    page = post_form(admin_client, f"{base}/bulk/preview", {"action": "add", "source": "group:nope"}, f"{base}/bulk")
    assert "not a valid" in page
    page = post_form(admin_client, f"{base}/bulk/preview", {"action": "add", "ids": users(tenant, 2),
                                                        "target": str(uuid.uuid4())}, f"{base}/bulk")
    assert "does not exist in the tenant" in page and "Try again" in page
    assert admin_client.get(f"{base}/bulk/jobs/999999").status_code == 404


def test_all_members_of_a_group_get_a_licence(admin_client: FlaskClient, ds: Datasource, tenant: Tenant,
                                              queued: list[int]) -> None:
    base, legal, bi = f"/admin/datasources/{ds.id}/o365", tenant.group("Legal"), tenant.sku("POWER_BI_PRO")
    members = tenant.members(legal)
    planned = {m for m in members if bi not in tenant.licences(m)
               and tenant.one("SELECT usage_location FROM users WHERE id = ?", m)}
    page = post_form(admin_client, f"{base}/bulk/licences", {"group_id": legal, "sku_id": bi}, f"{base}/bulk/licences")
    assert f"{len(planned)}</strong> will be assigned the licence" in page and "Nothing has been changed yet" in page
    assert all(bi not in tenant.licences(m) for m in planned)
    job_id = _job_id(admin_client, base)
    post_form(admin_client, f"{base}/bulk/jobs/{job_id}/queue", {}, f"{base}/bulk/jobs/{job_id}")
    execute_run(queued[-1])
    page = page_text(admin_client.get(f"{base}/bulk/jobs/{job_id}"))
    assert f"success: {len(planned)} assigned" in page
    assert all(bi in tenant.licences(m) for m in planned)
    csv = admin_client.get("/admin/audit.csv", query_string={"operation": "Bulk: Assign licence"})
    header, row = csv.get_data(as_text=True).splitlines()[:2]
    assert header.startswith("When,Actor,Action,Datasource,Operation,Target,Outcome")
    assert f"admin@example.com,o365.bulk_job,{ds.name},Bulk: Assign licence," in row


def test_a_throttling_graph_stops_the_preview_at_its_deadline(admin_client: FlaskClient, ds: Datasource,
                                                              tenant: Tenant, app: Flask) -> None:
    base = f"/admin/datasources/{ds.id}/o365"
    app.config["BULK_PREVIEW_DEADLINE"] = 1.5
    tenant.fault(kind="throttle", retry_after=1, path="/$batch")
    page = post_form(admin_client, f"{base}/bulk/preview", {"action": "add", "ids": users(tenant, 30),
                                                        "target": tenant.group("Legal")}, f"{base}/bulk")
    assert "did not answer the preview within 1.5 s (429 Too Many Requests" in page
    assert "Nothing was changed" in page and "Try again" in page
    tenant.control("DELETE", "faults")
    token = csrf_token(admin_client, f"{base}/bulk")
    again = admin_client.post(f"{base}/bulk/preview", data={"csrf_token": token, "action": "add",
                                                            "ids": users(tenant, 30), "target": tenant.group("Legal")})
    assert again.status_code == 303 and "/bulk/jobs/" in again.headers["Location"]


def test_a_read_only_datasource_previews_but_does_not_queue(admin_client: FlaskClient, ds: Datasource,
                                                            tenant: Tenant, queued: list[int]) -> None:
    from core.extensions import db

    ds.read_write = False
    db.session.commit()
    base = f"/admin/datasources/{ds.id}/o365"
    page = post_form(admin_client, f"{base}/bulk/preview", {"action": "add", "ids": users(tenant, 3),
                                                        "target": tenant.group("Legal")}, f"{base}/bulk")
    assert "3</strong> will be added" in page and "This data source is read-only" in page
    job_id = _job_id(admin_client, base)
    page = post_form(admin_client, f"{base}/bulk/jobs/{job_id}/queue", {}, f"{base}/bulk/jobs/{job_id}")
    assert "read-only" in page and queued == []


def test_all_members_matching_from_the_group_page_to_a_job(admin_client: FlaskClient, ds: Datasource,
                                                           tenant: Tenant, queued: list[int]) -> None:
    """The group page's "All N in the list" form (the lists' selection) lands on the preview and becomes a job."""
    base, legal = f"/admin/datasources/{ds.id}/o365", tenant.group("Legal")
    page = admin_client.get(f"{base}/groups/{legal}").get_data(as_text=True)
    form = page[page.index('id="select-all-form"'):]
    form = form[:form.index("</form>")]
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))
    assert fields["source"] == f"group:{legal}" and int(fields["count"]) == len(tenant.members(legal))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    assert fields["this_group"] == legal  # "Remove from group" needs no target: it is this group
    answer = admin_client.post(f"{base}/bulk/preview", data={**fields, "csrf_token": token, "action": "remove"})
    assert answer.status_code == 303
    job = page_text(admin_client.get(answer.headers["Location"]))
    users = {m for m in tenant.members(legal) if tenant.one("SELECT 1 FROM users WHERE id = ?", m)}
    assert f"{len(users)}</strong> will be removed" in job


def test_ticked_members_removed_from_the_group_page_need_no_target(admin_client: FlaskClient, ds: Datasource,
                                                                   tenant: Tenant, queued: list[int]) -> None:
    """Ticked rows on a group's page: "Remove from group" previews at once; "Add to another group" asks which."""
    base, legal = f"/admin/datasources/{ds.id}/o365", tenant.group("Legal")
    page = admin_client.get(f"{base}/groups/{legal}").get_data(as_text=True)
    form = page[page.index('id="selection-form"'):]
    form = form[:form.index("</form>")]
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))
    assert fields["this_group"] == legal and "target" not in fields
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    member = next(m for m in tenant.members(legal) if tenant.one("SELECT 1 FROM users WHERE id = ?", m))
    answer = admin_client.post(f"{base}/bulk/preview", data={**fields, "csrf_token": token, "action": "remove",
                                                             "ids": [member]})
    assert answer.status_code == 303
    assert "<strong>1</strong> will be removed" in page_text(admin_client.get(answer.headers["Location"]))
    asks = page_text(admin_client.post(f"{base}/bulk/preview", data={**fields, "csrf_token": token, "action": "add",
                                                                 "ids": [member]}))
    assert 'name="target"' in asks  # adding still asks which group
