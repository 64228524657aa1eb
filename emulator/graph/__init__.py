"""Microsoft Graph v1.0 emulation (docs/microsoft.md §5–§7): every request is authenticated with a bearer token
from this emulator's Entra ID side and answered with Microsoft's shapes, headers and error bodies.

Routes: /me (+ /memberOf, /transitiveMemberOf, /getMemberObjects, /licenseDetails), /organization,
/users (list, $count, POST), /users/{id|UPN} (GET, PATCH, DELETE, /memberOf, /transitiveMemberOf,
/getMemberObjects, /licenseDetails, /assignLicense, /revokeSignInSessions), /groups (list, $count, POST),
/groups/{id} (GET, PATCH, DELETE, /members, /members/$count, /owners, /transitiveMembers, /members/$ref,
/members/{id}/$ref, /members/{id}, /owners/$ref, /owners/{id}/$ref), /subscribedSkus, /users/delta, /groups/delta,
/$batch, /subscriptions (+ /{id}, /{id}/reauthorize) for users and groups.

Choices worth knowing (where Microsoft leaves room):
- Delegated writes need one of Global, User, Groups or License Administrator in the caller's `wids`.
- mailNickname uniqueness is enforced among mail-enabled groups (Microsoft 365 groups), as in Entra;
  two security groups may share a nickname.
- DELETE /users/{id} is a soft delete: delta reports `@removed: {"reason": "changed"}`;
  `directory.delete_user(..., permanent=True)` (control API) gives "deleted". Member removals in
  `members@delta` say "deleted".
- Delta pages hold 200 objects unless `Prefer: odata.maxpagesize=N`; tokens last 7 days (emulated clock) and die
  when `settings.delta_epoch` moves on (410 syncStateNotFound with a Location for a fresh round).
- $orderby: displayName (and userPrincipalName for users) only, asc/desc; with $filter only as an advanced query.
- In $batch answers, bodies that are not JSON (e.g. `$count`) are base64-encoded, as Graph does.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from emulator.directory import DirectoryError
from emulator.graph import common
from emulator.graph.errors import GraphError, graph_error

bp = Blueprint("graph", __name__, url_prefix="/v1.0")


@bp.before_request
def _authenticate() -> None:
    common.authenticate()


@bp.after_request
def _headers(resp: Response) -> Response:
    return common.add_standard_headers(resp)


@bp.errorhandler(GraphError)
def _graph_error(exc: GraphError) -> Response:
    return graph_error(exc.status, exc.code, exc.message, exc.headers)


@bp.errorhandler(DirectoryError)
def _directory_error(exc: DirectoryError) -> Response:
    return graph_error(exc.status, exc.code, exc.message)


@bp.app_errorhandler(404)
def _not_found(exc: HTTPException) -> Response | HTTPException:
    if not request.path.startswith("/v1.0/") and request.path != "/v1.0":
        return exc
    segment = request.path.rstrip("/").rsplit("/", 1)[-1]
    return _finish(graph_error(400, "BadRequest", f"Resource not found for the segment '{segment}'."))


@bp.app_errorhandler(405)
def _not_allowed(exc: HTTPException) -> Response | HTTPException:
    if not request.path.startswith("/v1.0/"):
        return exc
    return _finish(graph_error(405, "Request_BadRequest",
                               "Specified HTTP method is not allowed for the request target."))


def _finish(resp: Response) -> Response:
    return common.add_standard_headers(resp)


from emulator.graph import batch, delta, groups, organization, subscriptions, users  # noqa: E402, F401
