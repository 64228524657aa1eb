"""The OpenAPI document of /api/v1/, generated from the routes' Pydantic models, and a page rendered from it.

flask-openapi3 records each route's operation (parameters, body, responses) on the blueprint as it is declared;
this module adds what is common to all of them (info, servers, security, the Error answer) and serves the
result. The page renders the same document server-side: no CDN, no script.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Response, jsonify, render_template
from flask_openapi3.models import OPENAPI3_REF_PREFIX, APISpec, Components, Info, Schema, Server
from flask_openapi3.utils import get_model_schema

from api import bp
from api.schemas import ERROR_CODES, Error

DESCRIPTION = (
    "The Office 365 operations of the gateway's datasources. Authenticate with `Authorization: Bearer <API key>` "
    "(an Administrator creates keys under Administration > API keys), or with the browser session plus an "
    "`X-CSRFToken` header on unsafe methods. The caller must be one of the datasource's Connection users; writes "
    "also need a read-write datasource whose grant holds the permission. Errors are "
    "`{\"error\": {\"code\", \"message\"}}` with a stable code; a request that does not match this document is "
    "answered 422 `invalid_field` with the `field` at fault."
)
SECURITY_SCHEMES = {
    "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key: gw_<prefix>_<secret>."},
    "session": {"type": "apiKey", "in": "cookie", "name": "gw_session",
                "description": "The browser session; unsafe methods also need the page's X-CSRFToken header."},
}
ERROR_RESPONSE = {"description": "An error with a stable code",
                  "content": {"application/json": {"schema": {"$ref": f"{OPENAPI3_REF_PREFIX}/Error"}}}}


@cache
def document() -> dict[str, Any]:
    """The document: built once, from what the routes declared."""
    schemas = dict(bp.components_schemas)
    error_schema = get_model_schema(Error, mode="serialization")
    schemas.update({name: Schema(**value) for name, value in error_schema.pop("$defs", {}).items()})
    schemas["Error"] = Schema(**error_schema)
    spec = APISpec(
        openapi="3.1.0", info=Info(title="O365 Gateway API", version="1", description=DESCRIPTION),
        servers=[Server(url=bp.url_prefix)], paths={}, components=Components(schemas=schemas),
    )
    doc = spec.model_dump(mode="json", by_alias=True, exclude_unset=True, warnings=False)
    prefix = bp.url_prefix or ""
    doc["paths"] = {
        path.removeprefix(prefix): item.model_dump(mode="json", by_alias=True, exclude_unset=True, warnings=False)
        for path, item in bp.paths.items()
    }
    for item in doc["paths"].values():
        for operation in item.values():
            operation["responses"]["default"] = ERROR_RESPONSE
    doc["components"]["securitySchemes"] = SECURITY_SCHEMES
    doc["security"] = [{"apiKey": []}, {"session": []}]
    doc["tags"] = [tag.model_dump(exclude_unset=True) for tag in bp.tags]
    return doc


@bp.route("/openapi.json", methods=["GET"])
def openapi_json() -> Response:
    return jsonify(document())


@bp.route("/docs", methods=["GET"])
def openapi_page() -> str:
    doc = document()
    return render_template("api/docs.html", doc=doc, operations=list(_operations(doc)), error_codes=ERROR_CODES)


def _operations(doc: dict[str, Any]) -> Any:
    """Each operation with its body's fields resolved, for the page."""
    schemas = doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            fields = []
            if body:
                schema = schemas[body["$ref"].rsplit("/", 1)[-1]]
                fields = [{"name": name, "type": _type_of(prop), "required": name in schema.get("required", [])}
                          for name, prop in schema.get("properties", {}).items()]
            yield {"path": path, "method": method, "op": op, "body": fields,
                   "params": [p for p in op.get("parameters", []) if p["name"] != "datasource_id"]}


def _type_of(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return " or ".join(_type_of(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"array of {_type_of(prop.get('items', {}))}"
    if "enum" in prop:
        return " | ".join(str(v) for v in prop["enum"])
    return prop.get("format") or prop.get("type") or "object"
