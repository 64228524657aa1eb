"""The OIDC userinfo endpoint /oidc/userinfo named by the discovery document (docs/microsoft.md §1.2)."""

from __future__ import annotations

from flask import Response, request

from emulator.identity.blueprint import bp
from emulator.identity.common import base_url, json_response, user_by_id
from emulator.tokens import verify_access_token


@bp.get("/oidc/userinfo")
def userinfo() -> Response:
    auth = request.headers.get("Authorization", "")
    claims = verify_access_token(auth[7:] if auth.lower().startswith("bearer ") else None)
    if claims is None or "oid" not in claims:
        response = json_response({"error": {"code": "InvalidAuthenticationToken", "message": "Access token "
                                            "validation failure. Invalid audience."}}, 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
        return response
    user = user_by_id(claims["oid"])
    if user is None:
        return json_response({"error": {"code": "InvalidAuthenticationToken", "message": "User not found."}}, 401)
    body = {"sub": claims["sub"], "name": user["display_name"], "family_name": user["surname"],
            "given_name": user["given_name"], "picture": f"{base_url()}/v1.0/me/photo/$value"}
    if user["mail"]:
        body["email"] = user["mail"]
    return json_response(body)
