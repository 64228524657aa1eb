"""Entra's errors: AADSTS table, token error JSON, the browser error page (docs/microsoft.md §1.5, §1.6)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask import Response, jsonify, make_response, render_template

from emulator import clock
from emulator.identity.common import NO_STORE, base_url

# AADSTS code -> (error, HTTP status, message template, suberror)
AADSTS: dict[int, tuple[str, int, str, str | None]] = {
    700082: ("invalid_grant", 400, "The refresh token has expired due to inactivity. The token was issued on "
             "{issued} and was inactive for 90.00:00:00.", None),
    70008: ("invalid_grant", 400, "The provided authorization code or refresh token has expired due to "
            "inactivity. Send a new interactive authorization request for this user and resource.", None),
    50173: ("invalid_grant", 400, "The provided grant has expired due to it being revoked, a fresh auth token is "
            "needed. The user might have changed or reset their password. The grant was issued on '{issued}' and "
            "the TokensValidFrom date (before which tokens are not valid) for this user is '{valid_from}'.",
            "bad_token"),
    65001: ("invalid_grant", 400, "The user or administrator has not consented to use the application with ID "
            "'{client_id}' named '{client_name}'. Send an interactive authorization request for this user and "
            "resource.", "consent_required"),
    50076: ("invalid_grant", 400, "Due to a configuration change made by your administrator, or because you moved "
            "to a new location, you must use multi-factor authentication to access "
            "'00000003-0000-0000-c000-000000000000'.", "basic_action"),
    54005: ("invalid_grant", 400, "OAuth2 Authorization code was already redeemed, please retry with a new valid "
            "code or use an existing refresh token.", None),
    501481: ("invalid_grant", 400, "The Code_Verifier does not match the code_challenge supplied in the "
             "authorization request.", None),
    700005: ("invalid_grant", 400, "Provided Authorization Code is intended to use against other tenant, thus "
             "rejected.", None),
    70000: ("invalid_grant", 400, "Provided grant is invalid or malformed.", None),
    500112: ("invalid_grant", 400, "The reply address '{got}' does not match the reply address '{expected}' "
             "provided when requesting Authorization code.", None),
    9002313: ("invalid_grant", 400, "Invalid request. Request is malformed or invalid.", None),
    50057: ("invalid_grant", 400, "The user account is disabled.", None),
    50034: ("invalid_grant", 400, "The user account does not exist in the directory.", None),
    7000215: ("invalid_client", 401, "Invalid client secret provided. Ensure the secret being sent in the request "
              "is the client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
              None),
    7000218: ("invalid_request", 400, "The request body must contain the following parameter: 'client_assertion' "
              "or 'client_secret'.", None),
    700016: ("unauthorized_client", 400, "Application with identifier '{client_id}' was not found in the directory "
             "'{tenant}'. This can happen if the application has not been installed by the administrator of the "
             "tenant or consented to by any user in the tenant. You may have sent your authentication request to "
             "the wrong tenant.", None),
    70011: ("invalid_scope", 400, "The provided value for the input parameter 'scope' is not valid. The scope "
            "'{scope}' does not exist.", None),
    700022: ("invalid_scope", 400, "The provided value for the input parameter scope is not valid because it "
             "contains more than one resource. Scope {scope} is not valid.", None),
    1002012: ("invalid_scope", 400, "The provided value for scope {scope} is not valid. Client credential flows "
              "must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
              None),
    500011: ("invalid_resource", 400, "The resource principal named {resource} was not found in the tenant named "
             "{tenant}. This can happen if the application has not been installed by the administrator of the "
             "tenant or consented to by any user in the tenant.", None),
    900144: ("invalid_request", 400, "The request body must contain the following parameter: '{param}'.", None),
    70003: ("unsupported_grant_type", 400, "The app requested an unsupported grant type '{grant_type}'.", None),
    50059: ("invalid_request", 400, "No tenant-identifying information found in either the request or implied by "
            "any provided credentials.", None),
    90002: ("invalid_tenant", 400, "Tenant '{tenant}' not found. Check to make sure you have the correct tenant "
            "ID and are signing into the correct cloud. Check with your subscription administrator, this may "
            "happen if there are no active subscriptions for the tenant.", None),
    90033: ("temporarily_unavailable", 503, "A transient error has occurred. Please try again.", None),
    50196: ("temporarily_unavailable", 429, "The server terminated an operation because it encountered a client "
            "request loop. Please contact your app vendor.", None),
}


def timestamp(now: float | None = None) -> str:
    return dt.datetime.fromtimestamp(now if now is not None else clock.now(), dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def error_description(code: int, message: str) -> tuple[str, dict]:
    trace, corr, ts = str(uuid.uuid4()), str(uuid.uuid4()), timestamp()
    text = f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}"
    return text, {"timestamp": ts, "trace_id": trace, "correlation_id": corr}


def token_error(code: int, status: int | None = None, error: str | None = None, **fmt: Any) -> Response:
    """The docs/microsoft.md §1.6 error JSON with Entra's cache headers."""
    default_error, default_status, template, suberror = AADSTS[code]
    text, ids = error_description(code, template.format_map(_KeepMissing(fmt)))
    body = {"error": error or default_error, "error_description": text, "error_codes": [code], **ids,
            "error_uri": f"{base_url()}/error?code={code}"}
    if suberror:
        body["suberror"] = suberror
    response = jsonify(body)
    response.status_code = status or default_status
    response.headers.update(NO_STORE)
    return response


class _KeepMissing(dict):
    """Format values that leave a placeholder the caller did not fill as it is ({name})."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def message_page(title: str, message: str, *, code: int | None = None, status: int = 400,
                 links: list[tuple[str, str]] | None = None) -> Response:
    """Entra's page for errors it shows instead of redirecting (unknown tenant, client, redirect URI)."""
    text = f"AADSTS{code}: {message}" if code else message
    return make_response(render_template("message.html", title=title, message=text, code=code,
                                         links=links or [], trace_id=str(uuid.uuid4()),
                                         correlation_id=str(uuid.uuid4()), timestamp=timestamp()), status)
