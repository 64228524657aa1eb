"""Authorizing an Office 365 datasource: MSAL's authorization code flow with an Office 365 administrator.

`start_authorization` returns the flow to keep server-side and the URL to send the browser to;
`finish_authorization` redeems the code, validates the ID token, checks the account is an administrator and
returns the new MSAL token cache. Each refusal raises `AuthorizationFailed` with a message for the admin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msal
import requests

from office365.settings import GRAPH_RESOURCE, MicrosoftSettings
from oidc.id_tokens import IdTokenError, ProviderMetadata, validate_id_token

READ_SCOPES = ("User.Read.All", "Group.Read.All", "Organization.Read.All")
WRITE_SCOPES = ("User.ReadWrite.All", "Group.ReadWrite.All", "GroupMember.ReadWrite.All",
                "LicenseAssignment.ReadWrite.All")
FLOW_LIFETIME_SECONDS = 600

# Directory role template ids that make an account an Office 365 administrator for our purposes.
PRIVILEGED_ROLES = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "fdd7a751-b60b-444a-984c-02652fe8fa1c": "Groups Administrator",
    "4d6ac14f-3453-41d0-bef9-a3e0c569773a": "License Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
}

AADSTS_REASONS = {
    50173: "the grant was revoked in Office 365 (sessions revoked or the password was reset)",
    65001: "consent for the gateway was removed in Office 365",
    700082: "the grant expired after 90 days without use",
    70008: "the authorization expired or was revoked",
    70000: "the grant is no longer valid",
    50076: "multi-factor authentication is now required",
    50079: "the account must enrol in multi-factor authentication",
    50078: "the multi-factor authentication has expired",
    70043: "Conditional Access requires a new sign-in (sign-in frequency)",
    70044: "Conditional Access requires a new sign-in (session lifetime)",
    50132: "the session is no longer valid after a password change",
    50133: "the session is no longer valid after a password change",
    50055: "the account's password has expired",
    54005: "the authorization code was already used",
    501481: "the PKCE verifier did not match",
    7000215: "the gateway's client secret is wrong (check O365_CLIENT_SECRET)",
    7000222: "the gateway's client secret has expired (create a new one in Entra ID)",
    700016: "the gateway's application is not known in this tenant (check O365_CLIENT_ID)",
    65004: "the administrator declined consent",
}


class AuthorizationFailed(Exception):
    """The authorization did not complete; the message says why and what to do."""


def scopes_for(read_write: bool) -> list[str]:
    names = READ_SCOPES + (WRITE_SCOPES if read_write else ())
    return [f"{GRAPH_RESOURCE}/{name}" for name in names]


def short_scopes(scope_string: str) -> list[str]:
    """`https://graph.microsoft.com/User.Read.All openid` -> `['User.Read.All']` (OIDC scopes dropped)."""
    prefix = GRAPH_RESOURCE + "/"
    names = {part[len(prefix):] if part.startswith(prefix) else part for part in scope_string.split()}
    return sorted(names - {"openid", "profile", "email", "offline_access"})


def explain(error: dict[str, Any]) -> str:
    """An Entra error response in words, led by the AADSTS code."""
    codes = error.get("error_codes") or []
    match = re.match(r"AADSTS(\d+)", error.get("error_description") or "")
    code = int(codes[0]) if codes else int(match.group(1)) if match else None
    reason = AADSTS_REASONS.get(code) if code else None
    if reason:
        return f"AADSTS{code}: {reason[0].upper()}{reason[1:]}."
    description = (error.get("error_description") or error.get("error") or "unknown error").split("\r\n")[0]
    return description.split("\n")[0]


class _DiscoveryOnlyCache(dict):  # type: ignore[type-arg]
    """MSAL's `http_cache`, shared by every app instance of the process, keeping only GET responses (the
    authority's discovery document, 24 h) and never token-endpoint answers (MSAL would replay a 400 for 60 s).

    Without it each `make_msal_app` fetches discovery again: one extra request per Graph call (e.g. an SSO
    sign-in with groups overage).
    """

    def __setitem__(self, key: object, value: object) -> None:
        if key == "_index_" or str(key).startswith("GET "):
            super().__setitem__(key, value)


_MSAL_HTTP_CACHE = _DiscoveryOnlyCache()


def make_msal_app(settings: MicrosoftSettings, *, tenant: str = "organizations",
                  cache: msal.SerializableTokenCache | None = None) -> msal.ConfidentialClientApplication:
    """MSAL against the configured authority host only: no instance discovery, our CA bundle."""
    return msal.ConfidentialClientApplication(
        settings.client_id,
        client_credential=settings.client_secret,
        authority=settings.authority(tenant),
        instance_discovery=False,
        http_client=settings.shared_session,
        http_cache=_MSAL_HTTP_CACHE,
        token_cache=cache,
        timeout=settings.timeout,
    )


def start_authorization(settings: MicrosoftSettings, *, read_write: bool, redirect_uri: str,
                        login_hint: str | None = None) -> dict[str, Any]:
    """The MSAL flow dict (keep it server-side, keyed by `flow['state']`); send the browser to `auth_uri`."""
    if not settings.configured:
        raise AuthorizationFailed("The gateway has no Office 365 application configured: set O365_CLIENT_ID and "
                                  "O365_CLIENT_SECRET, then try again.")
    try:
        app = make_msal_app(settings)
        return app.initiate_auth_code_flow(scopes_for(read_write), redirect_uri=redirect_uri,
                                           prompt="select_account", login_hint=login_hint,
                                           response_mode="query")
    except (requests.RequestException, ValueError) as exc:
        raise AuthorizationFailed(f"Could not reach the Microsoft sign-in service ({type(exc).__name__}). "
                                  "Try again in a moment.") from None


@dataclass
class Grant:
    tenant_id: str
    user_oid: str
    username: str
    display_name: str
    scopes: list[str]
    token_cache: str
    access_token: str
    admin_roles: list[str]


MEMBER_OF_PAGES = 20  # a bound on a misbehaving nextLink chain (an account holds a few roles)


def _admin_roles(claims: dict[str, Any], access_token: str, settings: MicrosoftSettings) -> list[str]:
    """Privileged directory roles of the signed-in account: from `wids` (in the ID token when the application's
    groupMembershipClaims asks for it), else from Graph `/me/memberOf` cast to directory roles, every page."""
    wids = claims.get("wids")
    if isinstance(wids, list):
        return [PRIVILEGED_ROLES[w] for w in wids if w in PRIVILEGED_ROLES]
    url: str | None = f"{settings.graph_url}/me/memberOf/microsoft.graph.directoryRole"
    params: dict[str, str] | None = {"$select": "id,displayName,roleTemplateId", "$top": "999"}
    found: list[str] = []
    for _ in range(MEMBER_OF_PAGES):
        if url is None:
            break
        try:
            response = settings.shared_session.get(url, timeout=settings.timeout, params=params,
                                                   headers={"Authorization": f"Bearer {access_token}"})
            body = response.json() if response.status_code == 200 else None
        except (requests.RequestException, ValueError) as exc:
            raise AuthorizationFailed(f"Could not check the account's Office 365 roles: Microsoft Graph did not "
                                      f"answer ({type(exc).__name__}). Nothing was changed; try again in a "
                                      "moment.") from None
        if not isinstance(body, dict):
            raise AuthorizationFailed(f"Could not check the account's Office 365 roles: Microsoft Graph answered "
                                      f"{response.status_code} to /me/memberOf. Nothing was changed; try again "
                                      "in a moment.")
        found += [PRIVILEGED_ROLES[item["roleTemplateId"]] for item in body.get("value", [])
                  if item.get("roleTemplateId") in PRIVILEGED_ROLES]
        url, params = body.get("@odata.nextLink"), None
    return found


def finish_authorization(settings: MicrosoftSettings, flow: dict[str, Any], auth_response: dict[str, str],
                         *, leeway: int = 120) -> Grant:
    """Redeem the callback; raise `AuthorizationFailed` for every refusal, change nothing stored."""
    if auth_response.get("error"):
        if auth_response.get("error_subcode") == "cancel" or auth_response["error"] == "access_denied":
            raise AuthorizationFailed("The sign-in was cancelled or refused at Microsoft. Click Authorize to try "
                                      "again, and sign in with an Office 365 administrator account.")
        raise AuthorizationFailed(f"Microsoft refused the sign-in: {explain(auth_response)}")
    cache = msal.SerializableTokenCache()
    try:
        app = make_msal_app(settings, cache=cache)
        result = app.acquire_token_by_auth_code_flow(flow, auth_response)
    except ValueError:
        raise AuthorizationFailed("This sign-in does not match the authorization that was started (state "
                                  "mismatch). Click Authorize again.") from None
    except RuntimeError:
        raise AuthorizationFailed("The sign-in answer was not for this authorization (nonce mismatch). "
                                  "Click Authorize again.") from None
    except requests.RequestException as exc:
        raise AuthorizationFailed(f"Could not reach the Microsoft token service ({type(exc).__name__}); nothing "
                                  "was changed. Try again in a moment.") from None
    if "error" in result:
        raise AuthorizationFailed(f"Microsoft refused the authorization: {explain(result)}")
    raw_id_token = result.get("id_token")
    if not raw_id_token:
        raise AuthorizationFailed("Microsoft returned no ID token; the sign-in cannot be verified.")
    tid = (result.get("id_token_claims") or {}).get("tid", "")
    metadata = ProviderMetadata(f"{settings.authority('organizations')}/v2.0/.well-known/openid-configuration",
                                settings.shared_session)
    try:
        claims = validate_id_token(raw_id_token, metadata, client_id=settings.client_id, nonce=flow.get("nonce"),
                                   hashed_nonce=True, leeway=leeway)
    except IdTokenError as exc:
        raise AuthorizationFailed(f"The sign-in could not be verified: {exc}") from None
    except requests.RequestException as exc:
        raise AuthorizationFailed(f"Could not fetch Microsoft's signing keys ({type(exc).__name__}).") from None
    username = claims.get("preferred_username") or claims.get("email") or claims.get("oid", "")
    roles = _admin_roles(claims, result["access_token"], settings)
    if not roles:
        raise AuthorizationFailed(f"{username} is not an Office 365 administrator. Sign in with an account that "
                                  "holds an administrator role (for example Global Administrator).")
    return Grant(tenant_id=tid or claims["tid"], user_oid=claims.get("oid", ""), username=username,
                 display_name=claims.get("name", ""), scopes=short_scopes(result.get("scope", "")),
                 token_cache=cache.serialize(), access_token=result["access_token"], admin_roles=roles)
