"""/api/v1/datasources/{id}/bulk-jobs: the bulk jobs of the pages as a JSON resource (bulk.service does the work).

POST creates a job from a selection (object ids, or "all matching" a list's search: docs/selection.md) and
previews it (reads only, within the preview deadline); `"queue": true` queues it at once when something would
change. GET answers its state and counts, `/results` its objects page by page (`outcome=failed` for the failures);
`/queue`, `/cancel` and `/retry-failed` act on it as the page's buttons do.

The first API's `bulk/group-members` and `bulk/group-licences` (deprecated) take their old bodies and make the same
jobs: 202 Accepted with the queued job and its `Location`, or 201 with the previewed job when nothing would
change (or `dry_run`). No bulk operation runs inside a request any more.
"""

from __future__ import annotations

from typing import Annotated, Literal

from flask import Response, g, url_for
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from api import bp
from api import schemas as s
from api.errors import error_json
from api.views import BULK, DS, _answer, _datasource, _doc
from bulk import service
from bulk.models import BulkJob
from core.models import Datasource
from datasources.service import operation, run
from office365.bulk_preview import ACTIONS
from office365.registry import check_write_allowed

# A user's object id or UPN (Entra allows 113 characters): 5,000 of them stay under the 2 MB request limit.
UserKey = Annotated[str, Field(pattern=s.USER_KEY_PATTERN, max_length=113)]
JOBS = "/datasources/<id:datasource_id>/bulk-jobs"
Outcome = Literal["pending", "failed", "added", "already_member", "removed", "not_member", "assigned",
                  "already_assigned", "unassigned", "not_assigned", "not_found", "usage_location_required",
                  "no_seats_left", "not_attempted"]


class BulkSelectionBody(s.Body):
    """Exactly one of `ids` or `source`."""

    ids: Annotated[list[UserKey], Field(min_length=1, max_length=service.MAX_IDS)] | SkipJsonSchema[None] = Field(
        None, description="User object ids (or user principal names) to act on.")
    source: Annotated[str, Field(pattern=f"^(users|group:{s._GUID})$")] | SkipJsonSchema[None] = Field(
        None, description='"All matching": `users` (the User List) or `group:<group id>` (its members).')
    q: str = Field("", max_length=256, description="With `source`: the list's search text (prefix).")
    filter: list[Annotated[str, Field(max_length=80)]] = Field(
        default_factory=list, max_length=10,
        description="With `source`: filter tokens (enabled, disabled, licensed, unlicensed, department:<name>).")


class BulkJobBody(s.Body):
    action: Literal[ACTIONS]  # type: ignore[valid-type]
    target: s.ObjectId = Field(description="The group id (add, remove) or the licence's skuId.")
    selection: BulkSelectionBody
    disabled_plans: list[s.ObjectId] = Field(default_factory=list, max_length=100,
                                             description="assign-licence: service plan ids to switch off.")
    queue: bool = Field(False, description="Queue the job at once (when something would change).")


class BulkJobPath(s.DatasourcePath):
    job_id: int = Field(ge=1, le=s.MAX_ID, description="The bulk job's id.")


class BulkResultsQuery(s.ApiModel):
    outcome: Outcome | SkipJsonSchema[None] = Field(
        None, description="Only objects with this outcome (`failed`: every failure; `pending`: not sent yet).")
    page: int = Field(1, ge=1, le=10**6)
    page_size: int = Field(100, ge=1, le=1000)


class BulkJobOut(s.Out):
    """A bulk job: its state, how far it got, and its outcome counts."""

    id: int
    status: Literal["previewed", "queued", "running", "done", "partial", "failed", "cancelled"]
    action: str
    target_id: str
    target_name: str
    total: int = Field(description="Objects the job changes (the rest are counted in `unchanged`).")
    processed: int
    pending: int
    failed: int
    counts: dict[str, int] = Field(description="Objects by outcome.")
    unchanged: dict[str, int] = Field(description="Objects the preview found nothing to do for, by reason.")
    result: str = Field(description='The outcome in words, e.g. "partial: 340 added, 20 failed, 640 not attempted".')
    error: str | None
    cancel_requested: bool
    graph_requests: int
    preview_requests: int
    retry_of: int | None
    finished: bool


class BulkItemOut(s.Out):
    object_id: str
    label: str
    outcome: str | None = Field(description="None while not sent yet.")
    message: str | None
    request_id: str | None


class BulkItemPage(s.Out):
    items: list[BulkItemOut]
    total: int
    page: int
    page_size: int


def _job(path: BulkJobPath, name: str) -> BulkJob | tuple[Response, int]:
    ds = _datasource(path.datasource_id, name)
    job = service.job_for(ds, path.job_id)
    if job is None:
        return error_json(404, "job_not_found", f"There is no bulk job {path.job_id} on this datasource.")
    service.check_alive(job)
    return job


def _status(job: BulkJob, code: int = 200) -> tuple[Response, int]:
    return _answer(BulkJobOut, service.status(job), code)


def _refused(exc: service.NotQueueable) -> tuple[Response, int]:
    return error_json(409, "job_not_queueable", str(exc))


@bp.post(JOBS, summary="Preview a bulk change as a job (and queue it)", tags=[BULK], responses={201: BulkJobOut},
         openapi_extensions=_doc(None, "write"),
         description="Reads only unless `queue` is true. 503 `preview_deadline` when Graph did not answer the "
                     "preview in time (throttling): nothing was changed, try again.")
def create_bulk_job(path: s.DatasourcePath, body: BulkJobBody) -> tuple[Response, int]:
    ds = _datasource(path.datasource_id, "list_users")
    sel = body.selection
    selection = service.checked_selection(sel.ids or [], sel.source, sel.q, sel.filter)
    job = service.preview(ds, g.caller, body.action, body.target, selection, disabled_plans=body.disabled_plans)
    if body.queue and job.total:
        try:
            service.queue(job, g.caller)
        except service.NotQueueable as exc:
            return _refused(exc)
    return _status(job, 201)


@bp.get(f"{JOBS}/<id:job_id>", summary="A bulk job's state and counts", tags=[BULK],
        responses={200: BulkJobOut}, openapi_extensions=_doc(None, "read"))
def get_bulk_job(path: BulkJobPath) -> tuple[Response, int]:
    job = _job(path, "list_users")
    return job if isinstance(job, tuple) else _status(job)


@bp.get(f"{JOBS}/<id:job_id>/results", summary="A bulk job's objects and their outcomes, a page at a time",
        tags=[BULK], responses={200: BulkItemPage}, openapi_extensions=_doc(None, "read"))
def bulk_job_results(path: BulkJobPath, query: BulkResultsQuery) -> tuple[Response, int]:
    job = _job(path, "list_users")
    if isinstance(job, tuple):
        return job
    items, total = service.items_page(job, outcome=query.outcome, page=query.page, per_page=query.page_size)
    return _answer(BulkItemPage, {"items": items, "total": total, "page": query.page, "page_size": query.page_size})


def _act(path: BulkJobPath, act: str) -> tuple[Response, int]:
    job = _job(path, "list_users")
    if isinstance(job, tuple):
        return job
    try:
        if act == "queue":
            service.queue(job, g.caller)
        elif act == "cancel":
            service.cancel(job)
        else:
            return _status(service.retry_failed(job, g.caller), 201)
    except service.NotQueueable as exc:
        return _refused(exc)
    return _status(job)


@bp.post(f"{JOBS}/<id:job_id>/queue", summary="Queue a previewed bulk job", tags=[BULK],
         responses={200: BulkJobOut}, openapi_extensions=_doc(None, "write"),
         description="409 `job_not_queueable` when it is not a preview any more, changes nothing, or the "
                     "datasource is read-only.")
def queue_bulk_job(path: BulkJobPath) -> tuple[Response, int]:
    return _act(path, "queue")


@bp.post(f"{JOBS}/<id:job_id>/cancel", summary="Cancel a queued or running bulk job", tags=[BULK],
         responses={200: BulkJobOut}, openapi_extensions=_doc(None, "write"),
         description="Stops after the chunk in flight; the objects not sent are `not_attempted`.")
def cancel_bulk_job(path: BulkJobPath) -> tuple[Response, int]:
    return _act(path, "cancel")


@bp.post(f"{JOBS}/<id:job_id>/retry-failed", summary="Queue a new job for a finished job's failed objects",
         tags=[BULK], responses={201: BulkJobOut}, openapi_extensions=_doc(None, "write"))
def retry_failed_bulk_job(path: BulkJobPath) -> tuple[Response, int]:
    return _act(path, "retry")


# -- the first API's bulk operations, now jobs (deprecated) ---------------------------------------------------

DEPRECATED = ("Deprecated: use POST bulk-jobs. Makes a bulk job from the old body and answers 202 Accepted with the "
              "queued job (`Location`: the job; follow it with GET until `finished`), or 201 with the previewed job "
              "when nothing would change or with `dry_run`. 503 `preview_deadline` when Graph did not answer the "
              "preview in time: nothing was changed, try again.")


def _as_job(ds: Datasource, name: str, target: str, summary: dict, action: str, target_id: str,
            selection: service.Selection, *, disabled_plans: list[str] | None = None,
            dry_run: bool = False) -> tuple[Response, int]:
    if not dry_run:  # refused (and audited) before anything is read, as the operation itself was
        run(ds, g.caller, name, target, summary, lambda a: check_write_allowed(a, operation(name)), audit_it=False)
    job = service.preview(ds, g.caller, action, target_id, selection, disabled_plans=disabled_plans or ())
    code = 201
    if job.total and not dry_run:
        try:
            service.queue(job, g.caller)
        except service.NotQueueable as exc:
            return _refused(exc)
        code = 202
    answer, code = _status(job, code)
    answer.headers["Location"] = url_for("api.get_bulk_job", datasource_id=ds.id, job_id=job.id)
    answer.headers["Deprecation"] = "true"
    answer.headers["Link"] = f'<{url_for("api.create_bulk_job", datasource_id=ds.id)}>; rel="successor-version"'
    return answer, code


@bp.post(f"{DS}/bulk/group-members", tags=[BULK],
         responses={201: BulkJobOut, 202: BulkJobOut}, deprecated=True,
         summary="Add many users to a group, as a bulk job (deprecated: POST bulk-jobs)",
         openapi_extensions=_doc(None, "write"), description=DEPRECATED)
def bulk_add_users_to_group(path: s.DatasourcePath, body: s.BulkMembersBody) -> tuple[Response, int]:
    summary = {"group_id": body.group_id, "users": len(body.user_ids)}
    ds = _datasource(path.datasource_id, "add_users_to_group", f"group {body.group_id}", summary)
    return _as_job(ds, "add_users_to_group", f"group {body.group_id}", summary, "add", body.group_id,
                   service.checked_selection(body.user_ids, None))


@bp.post(f"{DS}/bulk/group-licences", tags=[BULK],
         responses={201: BulkJobOut, 202: BulkJobOut}, deprecated=True,
         summary="Assign a licence to every member of a group, as a bulk job (deprecated: POST bulk-jobs)",
         openapi_extensions=_doc(None, "write"), description=DEPRECATED)
def bulk_assign_licence(path: s.DatasourcePath, body: s.BulkLicencesBody) -> tuple[Response, int]:
    summary = {"group_id": body.group_id, "sku_id": body.sku_id, "disabled_plans": body.disabled_plans}
    target = f"group {body.group_id} / sku {body.sku_id}"
    ds = _datasource(path.datasource_id, "assign_licence_to_group_members", target, summary)
    return _as_job(ds, "assign_licence_to_group_members", target, summary, "assign-licence", body.sku_id,
                   service.checked_selection((), f"group:{body.group_id}"), disabled_plans=body.disabled_plans,
                   dry_run=body.dry_run)
