"""Microsoft Graph v1.0 emulation (reference §5–§7): every request is authenticated with a bearer token
from this emulator's Entra ID side and answered with Microsoft's shapes, headers and error bodies."""

from __future__ import annotations

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from emulator.directory import DirectoryError
from emulator.graph.errors import GraphError, graph_error

bp = Blueprint("graph", __name__, url_prefix="/v1.0")


@bp.before_request
def _authenticate() -> None:
    from emulator.graph import common

    common.authenticate()


@bp.after_request
def _headers(resp: Response) -> Response:
    from emulator.graph import common

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
    from emulator.graph import common

    return common.add_standard_headers(resp)


from emulator.graph import batch, delta, groups, organization, users  # noqa: E402, F401
