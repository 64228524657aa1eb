"""JSON API under /api/v1/: the Office 365 operations for scripts and processes (API key or browser session).

Routes are declared on a flask-openapi3 `APIBlueprint` with Pydantic models (api/schemas.py): the same models
validate each request and make the OpenAPI document (api/openapi.py).
"""

from flask.blueprints import BlueprintSetupState
from flask_openapi3 import APIBlueprint

from core.extensions import csrf


def _operation_id(*, name: str, path: str, method: str) -> str:
    return name  # the view's name, e.g. `find_users` (also its endpoint, `api.find_users`)


bp = APIBlueprint("api", __name__, url_prefix="/api/v1", operation_id_callback=_operation_id)
csrf.exempt(bp)  # session callers are CSRF-checked in api.auth for unsafe methods; API keys need no CSRF


@bp.record_once
def _answer_validation_errors(state: BlueprintSetupState) -> None:
    # flask-openapi3 asks `current_app.validation_error_callback` for the answer to a request that fails its
    # model. The gateway is a plain Flask app (only this blueprint uses flask-openapi3), so it is set here.
    from api.errors import validation_error

    state.app.validation_error_callback = validation_error  # type: ignore[attr-defined]


from api import bulk_jobs, openapi, views  # noqa: E402,F401  (routes attach themselves to bp)
