"""Redeeming a stored grant silently: MSAL's serialized token cache in, an access token and the rotated cache out.

Where the cache is kept (encrypted, in the datasource's row) and what a refusal means for the datasource is the
caller's business (datasources/grant.py); this module only talks to MSAL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import msal
import requests

from office365 import observe
from office365.authorization import explain, make_msal_app
from office365.errors import GraphUnavailable
from office365.settings import GRAPH_RESOURCE, MicrosoftSettings


class GrantRefused(Exception):
    """No access token can be had silently from the stored grant; the message is the reason in words."""


@dataclass(frozen=True)
class SilentToken:
    access_token: str
    rotated_cache: str | None  # the serialized cache when MSAL changed it (refresh token rotated): store it


def redeem_silently(settings: MicrosoftSettings, *, tenant: str, serialized_cache: str | None,
                    scopes: Iterable[str], force_refresh: bool = False) -> SilentToken:
    """An access token for Graph `scopes` (short names) from the cache; `force_refresh` redeems the refresh token.

    Raises `GrantRefused` when Entra refuses (the AADSTS reason in words) and `GraphUnavailable` when the token
    service cannot be reached.
    """
    cache = msal.SerializableTokenCache()
    if serialized_cache:
        cache.deserialize(serialized_cache)
    app = make_msal_app(settings, tenant=tenant, cache=cache)
    accounts = app.get_accounts()
    if not accounts:
        raise GrantRefused("no signed-in account is stored for it")
    resource_scopes = [f"{GRAPH_RESOURCE}/{name}" for name in sorted(scopes)]
    try:
        result = app.acquire_token_silent_with_error(resource_scopes, accounts[0], force_refresh=force_refresh)
    except requests.RequestException as exc:
        observe.token_refresh("failure")
        raise GraphUnavailable(f"Could not reach the Microsoft token service ({type(exc).__name__}). "
                               "Try again in a moment.") from None
    if not result or "access_token" not in result:
        observe.token_refresh("failure")
        raise GrantRefused(explain(result or {"error": "no token could be obtained silently"}))
    if force_refresh or cache.has_state_changed:  # the refresh token was redeemed (not a cached access token)
        observe.token_refresh("success")
    return SilentToken(str(result["access_token"]), cache.serialize() if cache.has_state_changed else None)
