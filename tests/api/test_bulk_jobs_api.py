"""The bulk-job resource of the JSON API: create (preview) with a selection, queue, status, paged results, cancel,
retry the failed; the same jobs as the pages (bulk.service), run here as a worker would run them."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from bulk import job as bulk_job
from bulk import service
from core.models import Datasource
from emulator.server import EmulatorHandle
from jobs.runner import execute_run
from tests.o365_helpers import emulator_env
from tests.o365_ops_helpers import Tenant, bearer


@pytest.fixture
def app_env(emulator: EmulatorHandle) -> dict[str, str]:
    return emulator_env(emulator)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    ids: list[int] = []
    monkeypatch.setattr(service, "enqueue_run", ids.append)
    return ids


def test_create_queue_follow_and_retry_a_bulk_job(client: FlaskClient, ds: Datasource, tenant: Tenant, key: str,
                                                  queued: list[int], app) -> None:  # type: ignore[no-untyped-def]
    app.config["BULK_START_CONCURRENCY"] = 1
    app.config["BULK_THROTTLE_PAUSE"] = 0.0
    h = bearer(key)
    jobs = f"/api/v1/datasources/{ds.id}/bulk-jobs"
    group = tenant.group("Retail")
    chosen = [r[0] for r in tenant.conn().execute(
        "SELECT id FROM users WHERE id NOT IN (SELECT member_id FROM memberships WHERE group_id = ?) "
        "ORDER BY seq LIMIT 30", (group,))]

    answer = client.post(jobs, headers=h, json={"action": "add", "target": group, "selection": {"ids": chosen}})
    assert answer.status_code == 201, answer.get_json()
    job = answer.get_json()
    assert (job["status"], job["total"], job["pending"]) == ("previewed", 30, 30) and not tenant.members(group) & set(
        chosen)
    tenant.fault(kind="error", status=503, method="PATCH", path="/groups/", count=3 * bulk_job.MAX_ATTEMPTS)
    answer = client.post(f"{jobs}/{job['id']}/queue", headers=h)
    assert answer.status_code == 200 and answer.get_json()["status"] == "queued"
    assert client.post(f"{jobs}/{job['id']}/queue", headers=h).get_json()["error"]["code"] == "job_not_queueable"
    execute_run(queued[-1])

    status = client.get(f"{jobs}/{job['id']}", headers=h).get_json()
    assert status["status"] == "partial" and status["result"] == "partial: 10 added, 20 failed"
    assert status["counts"] == {"added": 10, "failed": 20} and status["failed"] == 20 and status["finished"]
    page = client.get(f"{jobs}/{job['id']}/results", headers=h, query_string={"outcome": "failed",
                                                                               "page_size": 15}).get_json()
    assert page["total"] == 20 and len(page["items"]) == 15 and page["items"][0]["outcome"] == "failed"
    page2 = client.get(f"{jobs}/{job['id']}/results", headers=h, query_string={"outcome": "failed", "page": 2,
                                                                                "page_size": 15}).get_json()
    assert len(page2["items"]) == 5
    assert {i["object_id"] for i in page["items"] + page2["items"]} == {u.lower() for u in chosen[:20]}
    cancel = client.post(f"{jobs}/{job['id']}/cancel", headers=h)
    assert cancel.status_code == 409 and cancel.get_json()["error"]["code"] == "job_not_queueable"

    retry = client.post(f"{jobs}/{job['id']}/retry-failed", headers=h)
    assert retry.status_code == 201
    retried = retry.get_json()
    assert (retried["status"], retried["total"], retried["retry_of"]) == ("queued", 20, job["id"])
    execute_run(queued[-1])
    assert client.get(f"{jobs}/{retried['id']}", headers=h).get_json()["result"] == "success: 20 added"
    assert set(chosen) <= tenant.members(group)


def test_bad_requests_and_unknown_jobs(client: FlaskClient, ds: Datasource, tenant: Tenant, key: str,
                                       queued: list[int]) -> None:
    h = bearer(key)
    jobs = f"/api/v1/datasources/{ds.id}/bulk-jobs"
    group = tenant.group("Retail")
    both = client.post(jobs, headers=h, json={"action": "add", "target": group,
                                              "selection": {"ids": [group], "source": "users"}})
    assert both.status_code == 422 and both.get_json()["error"]["field"] == "ids"
    bad = client.post(jobs, headers=h, json={"action": "paint", "target": group, "selection": {"ids": [group]}})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "action"
    unknown = client.get(f"{jobs}/424242", headers=h)
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "job_not_found"

    cancel = client.post(jobs, headers=h, json={"action": "remove", "target": group, "queue": True,
                                                "selection": {"source": f"group:{group}"}})
    job = cancel.get_json()
    assert cancel.status_code == 201 and job["status"] == "queued" and job["total"] == len(tenant.members(group))
    answer = client.post(f"{jobs}/{job['id']}/cancel", headers=h).get_json()
    assert answer["status"] == "cancelled" and answer["counts"] == {"not_attempted": job["total"]}
    assert answer["result"] == f"cancelled: {job['total']} not attempted"

