"""The bulk service against the tenant emulator: previews counted in Graph requests (never timed), a job run by a
worker, resumed after the worker was killed, cancelled, partly failed with its audit row, and retried."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from bulk import job as bulk_job
from bulk import service
from bulk.models import BulkItem, BulkJob
from core.extensions import db
from core.models import AuditEvent, Datasource, User
from jobs.models import TaskRun
from jobs.runner import execute_run, sweep_stale
from tests.conftest import ADMIN_EMAIL
from tests.o365_ops_helpers import Tenant


def caller() -> service.Caller:
    user = db.session.scalar(select(User).where(User.email == ADMIN_EMAIL))
    assert user is not None
    return service.Caller(user)


def users(tenant: Tenant, n: int, *, offset: int = 40) -> list[str]:
    """`n` generated users (the seeded demo people come first and are skipped)."""
    return [r[0] for r in tenant.conn().execute("SELECT id FROM users ORDER BY seq LIMIT ? OFFSET ?", (n, offset))]


def graph_calls(tenant: Tenant) -> dict[str, int]:
    return {k: v for k, v in tenant.control("GET", "counters").json()["counters"].items() if " /v1.0" in k}


def new_group(tenant: Tenant, ds: Datasource, name: str) -> str:
    from datasources.service import graph_access
    from office365.groups import NewGroup, create_group

    return create_group(graph_access(ds), NewGroup(name)).group.id


def outcomes(job: BulkJob) -> dict[str | None, int]:
    db.session.expire_all()
    return service.counts(job)


def audit_of(job: BulkJob) -> AuditEvent:
    rows = [e for e in db.session.scalars(select(AuditEvent).where(AuditEvent.action == "o365.bulk_job"))
            if e.detail.get("job_id") == job.id]
    assert len(rows) == 1, rows
    return rows[0]


def test_preview_of_ids_lists_only_the_changes_in_few_graph_requests(ds: Datasource, tenant: Tenant) -> None:
    group = new_group(tenant, ds, "Preview target")
    chosen = users(tenant, 120)
    for uid in chosen[:7]:
        tenant.conn().execute("INSERT INTO memberships (group_id, member_id, relation) VALUES (?, ?, 'member')",
                              (group, uid))
    tenant.conn().commit()
    ghost = str(uuid.uuid4())
    tenant.control("DELETE", "counters")
    selection = service.checked_selection([*chosen, ghost, "not-an-id"], None)
    job = service.preview(ds, caller(), "add", group, selection)

    assert job.status == BulkJob.PREVIEWED and job.total == 113
    assert job.unchanged == {"already_member": 7, "not_found": 1, "invalid": 1}
    items, total = service.items_page(job, per_page=50)
    assert total == 113 and len(items) == 50 and {i.object_id for i in items} <= set(chosen[7:])
    # group (+ its member count in one $batch), the members' ids (one page), 121 users in one $batch of 9 look-ups
    calls = graph_calls(tenant)
    assert calls["POST /v1.0/$batch"] <= 2 and calls["GET /v1.0/groups/<group_id>"] == 1, calls
    assert sum(n for k, n in calls.items() if not k.startswith("GET /v1.0/users")) <= 5, calls
    assert not [k for k in calls if k.startswith("GET /v1.0/users/<ref>")], calls  # never one request per user


def test_membership_of_many_users_is_read_300_per_request(ds: Datasource, tenant: Tenant) -> None:
    from office365.bulk_preview import members_among

    group = tenant.group("All Company")
    chosen = users(tenant, 30, offset=0)
    from datasources.service import graph_access

    access = graph_access(ds)
    tenant.control("DELETE", "counters")
    members = members_among(access.client, group, [u.lower() for u in chosen])
    assert members == {u.lower() for u in chosen if u in tenant.members(group)}
    calls = graph_calls(tenant)  # Graph counts each $batch item too
    assert calls["POST /v1.0/$batch"] == 1 and calls["GET /v1.0/groups/<group_id>/members/microsoft.graph.user"] == 2


def test_job_runs_and_resumes_after_the_worker_is_killed(ds: Datasource, tenant: Tenant, app: Any,
                                                         queued: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    app.config["BULK_START_CONCURRENCY"] = 1
    group = new_group(tenant, ds, "Resume target")
    chosen = users(tenant, 100)
    job = service.queue(service.preview(ds, caller(), "add", group, service.checked_selection(chosen, None)),
                        caller())
    assert queued == [job.run_id]

    class WorkerKilled(BaseException):
        """The process died: nothing after this line of the worker runs."""

    real_round, rounds = bulk_job._round, []

    def dying_round(*args: Any) -> Any:
        if len(rounds) == 2:
            raise WorkerKilled
        rounds.append(1)
        return real_round(*args)

    monkeypatch.setattr(bulk_job, "_round", dying_round)
    first_run = job.run_id
    with pytest.raises(WorkerKilled):
        execute_run(first_run)  # type: ignore[arg-type]
    db.session.rollback()
    monkeypatch.setattr(bulk_job, "_round", real_round)
    assert outcomes(job) == {"added": 40, None: 60}  # two rounds of 20 were committed
    assert len(tenant.members(group)) == 40

    # the worker is gone: the sweep (every scheduler tick) fails its run and the job queues itself again
    run = db.session.get(TaskRun, first_run)
    run.worker = "no-such-host.invalid:1"
    run.heartbeat_at = run.heartbeat_at.replace(year=2000)
    db.session.commit()
    tenant.control("DELETE", "counters")
    assert sweep_stale() == 1
    db.session.expire_all()
    job = db.session.get(BulkJob, job.id)
    assert job.run_id != first_run and job.status == BulkJob.QUEUED and job.resumes == 1
    assert queued[-1] == job.run_id
    execute_run(job.run_id)  # type: ignore[arg-type]
    db.session.expire_all()
    job = db.session.get(BulkJob, job.id)
    assert job.status == BulkJob.DONE and job.result == "success: 100 added"
    assert tenant.members(group) == set(chosen)
    assert graph_calls(tenant).get("PATCH /v1.0/groups/<group_id>") == 3  # only the 60 not sent before
    assert audit_of(job).outcome == "success"


def test_cancel_before_and_during_the_run(ds: Datasource, tenant: Tenant, app: Any, queued: list[int],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    app.config["BULK_START_CONCURRENCY"] = 1
    group = new_group(tenant, ds, "Cancel target")
    chosen = users(tenant, 60)
    job = service.queue(service.preview(ds, caller(), "add", group, service.checked_selection(chosen, None)),
                        caller())
    service.cancel(job)
    assert job.status == BulkJob.CANCELLED and outcomes(job) == {"not_attempted": 60}
    execute_run(job.run_id)  # type: ignore[arg-type]  # the queued run can no longer be claimed
    assert tenant.members(group) == set() and audit_of(job).outcome == "cancelled"

    job = service.queue(service.preview(ds, caller(), "add", group, service.checked_selection(chosen, None)),
                        caller())
    real_round = bulk_job._round

    def round_then_cancel(*args: Any) -> Any:
        rows = real_round(*args)
        db.session.execute(BulkJob.__table__.update().where(BulkJob.id == job.id).values(cancel_requested=True))
        return rows

    monkeypatch.setattr(bulk_job, "_round", round_then_cancel)
    execute_run(job.run_id)  # type: ignore[arg-type]
    db.session.expire_all()
    job = db.session.get(BulkJob, job.id)
    assert job.status == BulkJob.CANCELLED and job.result == "cancelled: 20 added, 40 not attempted"
    assert len(tenant.members(group)) == 20
    with pytest.raises(service.NotQueueable):
        service.cancel(job)


def test_partial_outcome_audits_every_failed_id_and_retry_sends_only_those(
        ds: Datasource, tenant: Tenant, app: Any, queued: list[int]) -> None:
    app.config["BULK_START_CONCURRENCY"] = 1
    group = new_group(tenant, ds, "Partial target")
    chosen = users(tenant, 40)
    job = service.queue(service.preview(ds, caller(), "add", group, service.checked_selection(chosen, None)),
                        caller())
    # Graph fails the first chunk's PATCH every time it is tried (5 rounds of 3 attempts), then recovers
    tenant.fault(kind="error", status=503, method="PATCH", path="/groups/", count=3 * bulk_job.MAX_ATTEMPTS)
    execute_run(job.run_id)  # type: ignore[arg-type]
    db.session.expire_all()
    job = db.session.get(BulkJob, job.id)
    assert job.status == BulkJob.PARTIAL and job.result == "partial: 20 added, 20 failed"
    run = db.session.get(TaskRun, job.run_id)
    assert run.status == TaskRun.FAILED and run.error == "partial: 20 added, 20 failed"  # never "succeeded"
    event = audit_of(job)
    assert event.outcome == "partial" and event.detail["result"] == "partial: 20 added, 20 failed"
    assert event.detail["failed_ids"] == [u.lower() for u in chosen[:20]]
    failed, n = service.items_page(job, outcome="failed")
    assert n == 20 and "did not answer properly" in (failed[0].message or "")

    retry = service.retry_failed(job, caller())
    assert retry.parent_id == job.id and retry.total == 20 and queued[-1] == retry.run_id
    assert {i.object_id for i in db.session.scalars(select(BulkItem).where(BulkItem.job_id == retry.id))} == {
        u.lower() for u in chosen[:20]}
    tenant.control("DELETE", "counters")
    execute_run(retry.run_id)  # type: ignore[arg-type]
    db.session.expire_all()
    retry = db.session.get(BulkJob, retry.id)
    assert retry.status == BulkJob.DONE and retry.result == "success: 20 added"
    assert tenant.members(group) == set(chosen)
    assert graph_calls(tenant).get("PATCH /v1.0/groups/<group_id>") == 1


def test_remove_and_licence_jobs(ds: Datasource, tenant: Tenant, queued: list[int]) -> None:
    group = tenant.group("All Company")
    before = tenant.members(group)
    chosen = users(tenant, 25, offset=0)
    job = service.preview(ds, caller(), "remove", group, service.checked_selection(chosen, None))
    assert job.total == len([u for u in chosen if u in before])
    execute_run(service.queue(job, caller()).run_id)  # type: ignore[arg-type]
    db.session.expire_all()
    assert not set(chosen) & tenant.members(group)
    assert db.session.get(BulkJob, job.id).status == BulkJob.DONE

    sku = tenant.sku("SPE_E5")
    holders = {r[0] for r in tenant.conn().execute("SELECT user_id FROM user_licenses WHERE sku_id = ?", (sku,))}
    job = service.preview(ds, caller(), "remove-licence", sku, service.checked_selection(chosen, None))
    assert job.total == len(holders & set(chosen))
    assert job.unchanged.get("not_assigned") == len(set(chosen) - holders)



def test_all_matching_a_search_is_what_the_list_showed(ds: Datasource, tenant: Tenant) -> None:
    group = new_group(tenant, ds, "Matching target")
    selection = service.checked_selection([], "users", "ada", ["enabled"], count=999)
    job = service.preview(ds, caller(), "add", group, selection)
    expected = {r[0] for r in tenant.conn().execute(
        "SELECT id FROM users WHERE account_enabled = 1 AND (lower(display_name) LIKE 'ada%' OR "
        "lower(mail) LIKE 'ada%' OR lower(user_principal_name) LIKE 'ada%')")}
    items, total = service.items_page(job, per_page=500)
    assert expected and total == len(expected) and {i.object_id for i in items} == expected
    assert job.selection["described"] == 'all users matching "ada" filtered by enabled'
    with pytest.raises(service.FieldError):
        service.checked_selection([], "users", "", ["shoe-size:42"])
