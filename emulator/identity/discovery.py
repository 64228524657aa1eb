"""OpenID discovery documents, signing keys (JWKS), error lookup page (docs/microsoft.md §1.1-§1.3)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, request

from emulator.identity.blueprint import bp
from emulator.identity.common import CONSUMERS_TID, SPECIAL_TENANTS, base_url, json_response, resolve_tenant
from emulator.identity.errors import message_page, token_error
from emulator.tokens import keyring

PUBLIC_CACHE = {"Cache-Control": "max-age=86400, private", "Access-Control-Allow-Origin": "*"}


@bp.get("/<tenant>/v2.0/.well-known/openid-configuration")
def discovery(tenant: str) -> Response:
    base = base_url()
    low = tenant.lower()
    if low in ("common", "organizations"):
        segment, issuer, region = low, f"{base}/{{tenantid}}/v2.0", None
    elif low == "consumers":
        segment, issuer, region = low, f"{base}/{CONSUMERS_TID}/v2.0", None
    else:
        row = resolve_tenant(tenant)
        if row is None:
            return token_error(90002, tenant=tenant)
        segment, issuer, region = row["id"], f"{base}/{row['id']}/v2.0", "WW"
    host = urlsplit(base).netloc
    doc = {
        "token_endpoint": f"{base}/{segment}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/{segment}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{base}/{segment}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/{segment}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/{segment}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                             "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
                             "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": f"{base}/{segment}/kerberos",
        "tenant_region_scope": region,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": host,
        "rbac_url": "https://pas.windows.net",
    }
    return json_response(doc, headers=PUBLIC_CACHE)


@bp.get("/discovery/v2.0/keys")
def jwks_common() -> Response:
    return jwks("common")


@bp.get("/<tenant>/discovery/v2.0/keys")
def jwks(tenant: str) -> Response:
    if tenant.lower() not in SPECIAL_TENANTS and resolve_tenant(tenant) is None:
        return token_error(90002, tenant=tenant)
    return json_response(keyring().jwks(f"{base_url()}/{{tenantid}}/v2.0"), headers=PUBLIC_CACHE)


@bp.get("/error")
def error_info() -> Response:
    code = request.args.get("code", "")
    return message_page("Error lookup", f"Error code AADSTS{code}. See the emulator reference, section 1.6.",
                        status=200)
