"""OpenID Connect relying party with Authlib: authorization URL (PKCE S256, state, nonce), code redemption, and
ID token validation through `oidc.id_tokens` (one validator for Entra and generic providers).

Discovery and JWKS are cached per process and provider, so once warm a sign-in makes one outbound request:
the token endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app

from core.crypto import InvalidToken, secret_box
from core.extensions import db
from core.models import Datasource
from datasources.grant import microsoft_settings
from oidc.id_tokens import (
    DiscoveryError,
    FetchRefused,
    IdTokenError,
    ProviderMetadata,
    ProviderUnavailable,
    validate_id_token,
)
from sso.models import SsoProvider
from sso.provider_http import ProviderAdapter, mount, provider_session

_metadata_cache: dict[tuple[int, str], ProviderMetadata] = {}
_metadata_lock = threading.Lock()


class ProviderError(Exception):
    """The provider could not be reached or refused; `check` names the step for diagnostics."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


@dataclass
class ProviderClient:
    provider: SsoProvider
    discovery_url: str
    client_id: str
    client_secret: str
    scopes: str
    session: requests.Session
    issuer: str = ""  # what the discovery document must name (configured, or the datasource tenant's)
    tenant_id: str | None = None
    metadata_override: ProviderMetadata | None = None  # tests

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def is_office365(self) -> bool:
        return self.provider.kind == SsoProvider.OFFICE365

    @property
    def timeout(self) -> float:
        return float(current_app.config.get("SSO_HTTP_TIMEOUT", 10))

    @property
    def metadata(self) -> ProviderMetadata:
        if self.metadata_override is not None:
            return self.metadata_override
        key = (self.provider.id, self.discovery_url)
        with _metadata_lock:
            found = _metadata_cache.get(key)
            if found is None or found.session is not self.session:
                found = _metadata_cache[key] = ProviderMetadata(
                    self.discovery_url, self.session, timeout=self.timeout, expected_issuer=self.issuer or None,
                    check_endpoint=None if self.is_office365 or not self.issuer else endpoint_checker(
                        self.issuer, current_app.config.get("SSO_PROVIDER_ENDPOINT_HOSTS") or []))
        return found

    def document(self) -> dict[str, Any]:
        try:
            return self.metadata.document
        except DiscoveryError as exc:
            raise ProviderError("discovery", f"The sign-in service {self.name!r} publishes a configuration "
                                             f"this gateway cannot use: {exc}.") from None
        except (ProviderUnavailable, FetchRefused, requests.Timeout) as exc:
            raise ProviderError("discovery", f"The sign-in service {self.name!r} could not be reached ({exc}). "
                                             "Try again in a moment.") from None
        except (requests.RequestException, ValueError) as exc:
            raise ProviderError("discovery", f"The sign-in service {self.name!r} could not be reached "
                                             f"({type(exc).__name__}). Try again in a moment.") from None

    def algorithms(self) -> list[str]:
        if self.is_office365:
            return ["RS256"]
        return list(self.document().get("id_token_signing_alg_values_supported") or ["RS256"])

    def oauth(self, redirect_uri: str) -> OAuth2Session:
        methods = self.document().get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_post" if self.is_office365 or "client_secret_basic" not in methods \
            else "client_secret_basic"
        client = OAuth2Session(self.client_id, self.client_secret, scope=self.scopes, redirect_uri=redirect_uri,
                               code_challenge_method="S256", token_endpoint_auth_method=method)
        client.trust_env = False
        client.verify = self.session.verify
        client.max_redirects = 0
        adapter = self.session.get_adapter(self.discovery_url)
        if isinstance(adapter, ProviderAdapter):
            mount(client, adapter)  # the token endpoint gets the same bounds as discovery
        return client

    def authorization_url(self, redirect_uri: str, *, state: str, nonce: str, code_verifier: str,
                          response_mode: str, login_hint: str | None, domain_hint: str | None,
                          claims: str | None = None, max_age: int | None = None) -> str:
        """The authorize URL; a step-up adds the OIDC `claims` request (`acrs`) and/or `max_age`
        (docs/microsoft.md §1.9)."""
        extra: dict[str, str] = {"nonce": nonce}
        if claims:
            extra["claims"] = claims
        if max_age is not None:
            extra["max_age"] = str(max_age)
        if response_mode == "form_post":
            extra["response_mode"] = "form_post"
        if login_hint:
            extra["login_hint"] = login_hint
        if domain_hint:
            extra["domain_hint"] = domain_hint
        url, _ = self.oauth(redirect_uri).create_authorization_url(
            self.document()["authorization_endpoint"], state=state, code_verifier=code_verifier, **extra)
        return str(url)

    def redeem(self, redirect_uri: str, code: str, code_verifier: str) -> dict[str, Any]:
        """POST the code to the token endpoint (the one outbound request of a warm sign-in)."""
        from authlib.common.errors import AuthlibBaseError

        try:
            token = self.oauth(redirect_uri).fetch_token(self.document()["token_endpoint"], code=code,
                                                         code_verifier=code_verifier, timeout=self.timeout)
        except (ProviderUnavailable, FetchRefused, requests.Timeout) as exc:
            raise ProviderError("token", f"The sign-in service {self.name!r} did not answer ({exc}). "
                                         "Try again in a moment.") from None
        except requests.RequestException as exc:
            raise ProviderError("token", f"The sign-in service {self.name!r} did not answer "
                                         f"({type(exc).__name__}). Try again in a moment.") from None
        except AuthlibBaseError as exc:
            error = str(getattr(exc, "error", "") or "refused")[:64]
            raise ProviderError("token", f"The sign-in service refused the sign-in ({error}). "
                                         "Start again from the sign-in page.") from None
        except (ValueError, KeyError) as exc:
            raise ProviderError("token", f"The sign-in service answered something unexpected "
                                         f"({type(exc).__name__}).") from None
        if not token.get("id_token"):
            raise ProviderError("token", "The sign-in service returned no ID token.")
        return dict(token)

    def validate(self, raw: str, *, nonce: str, leeway: int) -> dict[str, Any]:
        """Validate the ID token; for Office 365 also require the datasource's tenant."""
        try:
            claims = validate_id_token(raw, self.metadata, client_id=self.client_id, nonce=nonce, leeway=leeway,
                                       algorithms=self.algorithms())
        except (requests.RequestException, DiscoveryError) as exc:
            raise IdTokenError("signature", f"The provider's signing keys could not be read "
                                            f"({type(exc).__name__}).") from None
        if self.is_office365 and claims.get("tid") != self.tenant_id:
            raise IdTokenError("tenant", "The account belongs to another Office 365 tenant than this sign-in's.")
        if self.is_office365 and not claims.get("oid"):
            raise IdTokenError("claims", "The ID token has no object id (oid).")
        if not claims.get("sub"):
            raise IdTokenError("claims", "The ID token has no subject (sub).")
        return claims

    def end_session_endpoint(self) -> str | None:
        try:
            return self.document().get("end_session_endpoint")
        except ProviderError:
            return None


def endpoint_checker(issuer: str, extra_hosts: list[str]) -> Callable[[str, str], None]:
    """Endpoints named by discovery: https (http only when the issuer is, i.e. in development) on the issuer's
    origin, or https on a host of SSO_PROVIDER_ENDPOINT_HOSTS. The client secret goes to the token endpoint."""
    expected = urlsplit(issuer)

    def origin(parts: Any) -> tuple[str, str, int]:
        return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)

    def check(name: str, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and expected.scheme == "http"):
            raise DiscoveryError(f"{name} {url[:200]} does not use https")
        if parts.username or parts.password:
            raise DiscoveryError(f"{name} carries credentials in its URL")
        if origin(parts) != origin(expected) and not (parts.scheme == "https"
                                                      and (parts.hostname or "").lower() in extra_hosts):
            raise DiscoveryError(f"{name} {url[:200]} is not on the issuer's host (list the host in "
                                 "SSO_PROVIDER_ENDPOINT_HOSTS to allow it)")

    return check


def _cached_session(key: str, check_addresses: bool, verify: str | bool) -> requests.Session:
    sessions = current_app.extensions.setdefault("sso_http_sessions", {})
    allow_private = bool(current_app.config.get("SSO_ALLOW_PRIVATE_PROVIDERS"))
    cache_key = (key, verify, allow_private)
    found = sessions.get(cache_key)
    if found is None:
        adapter = ProviderAdapter(check_addresses=check_addresses, allow_private=allow_private)
        found = sessions[cache_key] = provider_session(adapter, verify)
    return found


def _generic_session() -> requests.Session:
    """Generic providers: addresses checked at each connection (public only, unless SSO_ALLOW_PRIVATE_PROVIDERS)."""
    return _cached_session("generic", True, current_app.config.get("O365_CA_BUNDLE") or True)


def _office365_session(verify: str | bool) -> requests.Session:
    """Entra (or the emulator) at O365_AUTHORITY_HOST, an operator's setting: bounded, addresses not checked."""
    return _cached_session("office365", False, verify)


def client_for(provider: SsoProvider) -> ProviderClient:
    """The runtime client of a provider (raises ProviderError when it is not usable)."""
    if provider.kind == SsoProvider.OFFICE365:
        datasource = db.session.get(Datasource, provider.datasource_id) if provider.datasource_id else None
        if datasource is None or not datasource.tenant_id:
            raise ProviderError("provider", "The Office 365 datasource of this sign-in is not authorized.")
        settings = microsoft_settings()
        return ProviderClient(
            provider, f"{settings.authority(datasource.tenant_id)}/v2.0/.well-known/openid-configuration",
            settings.client_id, settings.client_secret, provider.scopes or "openid profile email",
            _office365_session(settings.verify), issuer=f"{settings.authority(datasource.tenant_id)}/v2.0",
            tenant_id=datasource.tenant_id)
    try:
        secret = secret_box().decrypt(provider.client_secret) if provider.client_secret else ""
    except InvalidToken:
        raise ProviderError("provider", "The provider's client secret cannot be decrypted with "
                                        "TOKEN_ENCRYPTION_KEYS.") from None
    issuer = (provider.issuer or "").rstrip("/")
    return ProviderClient(provider, f"{issuer}/.well-known/openid-configuration", provider.client_id or "",
                          secret, provider.scopes or "openid profile email", _generic_session(), issuer=issuer)


def configured_issuer(provider: SsoProvider) -> str | None:
    """The issuer a provider's tokens and logout calls carry, known without asking the provider."""
    if provider.kind == SsoProvider.OFFICE365:
        datasource = db.session.get(Datasource, provider.datasource_id) if provider.datasource_id else None
        if datasource is None or not datasource.tenant_id:
            return None
        return f"{microsoft_settings().authority(datasource.tenant_id)}/v2.0"
    return (provider.issuer or "").rstrip("/") or None


def forget_provider(provider_id: int) -> None:
    with _metadata_lock:
        for key in [key for key in _metadata_cache if key[0] == provider_id]:
            del _metadata_cache[key]


def now() -> float:
    return time.time()
