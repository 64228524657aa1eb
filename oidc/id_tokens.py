"""ID token validation, done here because MSAL (≥1.38) no longer validates ID tokens at all.

Signature against the provider's JWKS (cached; fetched again when a token names an unknown `kid`, at most once a
minute), RS256 only, issuer (with `{tenantid}` replaced by the token's `tid` for multi-tenant metadata), audience
(our client id only; `azp` = our client id when there are several, OpenID Connect Core §3.1.3.7), `exp`/`nbf`/`iat`
with leeway, and nonce. The discovery document is validated (required keys, issuer) before anything uses it, and a
failed fetch is remembered with a growing back-off so a broken provider is not asked again on every request.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ALLOWED_ALGORITHMS = ["RS256"]
ASYMMETRIC_ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


REQUIRED_DISCOVERY_KEYS = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
BACKOFF_FIRST, BACKOFF_MAX = 5.0, 300.0


class IdTokenError(Exception):
    """The ID token failed a check; `check` names which one (for diagnostics and tests)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


class DiscoveryError(ValueError):
    """The discovery document is unusable (a required key missing, another issuer, an endpoint not allowed)."""


class ProviderUnavailable(requests.RequestException):
    """A recent fetch of this document failed; it is not tried again before the back-off ends."""


class FetchRefused(requests.RequestException):
    """The fetch was refused on our side: an address, a redirect, a body too large (see sso.provider_http)."""


class ProviderBusy(ProviderUnavailable):
    """Another request is fetching this right now; this one does not wait (a hanging provider holds one thread)."""


@dataclass
class _Failure:
    until: float
    count: int
    reason: str


@dataclass
class ProviderMetadata:
    """The parts of an OpenID discovery document that validation needs, plus its key set.

    `expected_issuer`: the issuer the document must name (OpenID Connect Discovery §4.3; a trailing "/" aside).
    `check_endpoint(name, url)`: raises `DiscoveryError` for an endpoint the caller will not send anything to.
    """

    discovery_url: str
    session: requests.Session
    timeout: float = 10.0
    jwks_max_age: float = 24 * 3600
    jwks_refresh_interval: float = 60.0
    expected_issuer: str | None = None
    check_endpoint: Callable[[str, str], None] | None = None
    _document: dict[str, Any] | None = None
    _keys: KeySet | None = None
    _keys_fetched_at: float = 0.0
    _kid_refreshed_at: float = float("-inf")
    _failures: dict[str, _Failure] = field(default_factory=dict)
    _fetching: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def document(self) -> dict[str, Any]:
        if self._document is None:
            self._document = self._remembering_failure("discovery", self._fetch_document)
        return self._document

    @property
    def issuer(self) -> str:
        return str(self.document["issuer"])

    def _fetch_document(self) -> dict[str, Any]:
        document = self._get_json(self.discovery_url)
        missing = [key for key in REQUIRED_DISCOVERY_KEYS
                   if not isinstance(document.get(key), str) or not document[key]]
        if missing:
            raise DiscoveryError(f"the discovery document lacks {', '.join(missing)}")
        if self.expected_issuer is not None and \
                document["issuer"].rstrip("/") != self.expected_issuer.rstrip("/"):
            raise DiscoveryError(f"the discovery document names the issuer {document['issuer'][:200]!r}, "
                                 f"not {self.expected_issuer!r}")
        if self.check_endpoint is not None:
            for name in (*REQUIRED_DISCOVERY_KEYS[1:], "end_session_endpoint"):
                if name in document:
                    if not isinstance(document[name], str):
                        raise DiscoveryError(f"{name} in the discovery document is not a URL")
                    self.check_endpoint(name, document[name])
        return document

    def _get_json(self, url: str) -> dict[str, Any]:
        response = self.session.get(url, timeout=self.timeout, allow_redirects=False)
        if response.is_redirect:
            raise DiscoveryError(f"{url} answered with a redirect (not followed)")
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict):
            raise DiscoveryError(f"{url} did not answer a JSON object")
        return document

    def _remembering_failure(self, what: str, fetch: Callable[[], Any]) -> Any:
        """Run `fetch`, one caller at a time (others fail at once rather than wait); after a failure, fail fast
        (no I/O) for 5 s, then 10, 20, ... up to 5 minutes."""
        with self._lock:
            failure = self._failures.get(what)
            if failure is not None and time.monotonic() < failure.until:
                raise ProviderUnavailable(f"{failure.reason}; not retried for "
                                          f"{failure.until - time.monotonic():.0f} s")
            if what in self._fetching:
                raise ProviderBusy(f"the {what} document is being fetched by another request")
            self._fetching.add(what)
        try:
            result = fetch()
        except (requests.RequestException, ValueError) as exc:
            count = failure.count + 1 if failure is not None else 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (count - 1))
            ours = isinstance(exc, DiscoveryError | ProviderUnavailable | FetchRefused | requests.Timeout)
            reason = str(exc)[:300] if ours else type(exc).__name__
            with self._lock:
                self._failures[what] = _Failure(time.monotonic() + delay, count, reason)
            raise
        finally:
            with self._lock:
                self._fetching.discard(what)
        with self._lock:
            self._failures.pop(what, None)
        return result

    def _fetch_keys(self) -> KeySet:
        document = self._get_json(self.document["jwks_uri"])
        try:
            return KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, TypeError, KeyError) as exc:
            raise DiscoveryError(f"the key set at jwks_uri is not valid ({type(exc).__name__})") from None

    def key_set(self, kid: str | None) -> KeySet:
        """The JWKS, fetched again when the cache is old, or when `kid` is not in it (at most once a minute).

        While another request refreshes them, or when a refresh fails, the keys held so far answer.
        """
        with self._lock:
            moment = time.monotonic()
            current = self._keys
            stale = moment - self._keys_fetched_at > self.jwks_max_age
            known = current is not None and any(key.kid == kid for key in current.keys)
            refresh = bool(kid) and not known and moment - self._kid_refreshed_at >= self.jwks_refresh_interval
            if current is not None and not stale and not refresh:
                return current
            if current is not None and not stale:
                self._kid_refreshed_at = moment
        try:
            keys = self._remembering_failure("jwks", self._fetch_keys)
        except (requests.RequestException, ValueError):
            if current is not None:
                return current
            raise
        with self._lock:
            self._keys, self._keys_fetched_at = keys, time.monotonic()
        return keys


def expected_issuer(metadata_issuer: str, tid: str | None) -> str:
    if "{tenantid}" in metadata_issuer:
        if not tid or not GUID.match(tid):
            raise IdTokenError("issuer", "The ID token has no valid tenant id (tid).")
        return metadata_issuer.replace("{tenantid}", tid)
    return metadata_issuer


def audience_problem(claims: dict[str, Any], client_id: str) -> str | None:
    """Why `aud`/`azp` do not make this token ours, or None (OpenID Connect Core §3.1.3.7, items 3 to 5).

    `aud` must contain our client id and no audience we do not trust (we trust none besides ourselves); with
    several audiences `azp` is required, and whenever present it must be our client id.
    """
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
    if client_id not in audiences:
        return "The token was issued for another application."
    others = sorted({str(value) for value in audiences if value != client_id})
    if others:
        return f"The token also names other audiences ({', '.join(others)[:200]}), which this gateway does not trust."
    if len(audiences) > 1 and "azp" not in claims:
        return "The token names several audiences but no authorized party (azp)."
    if "azp" in claims and claims["azp"] != client_id:
        return "The token was obtained by another application (azp)."
    return None


def check_audience(claims: dict[str, Any], client_id: str) -> None:
    problem = audience_problem(claims, client_id)
    if problem is not None:
        raise IdTokenError("audience", problem.replace("The token", "The ID token", 1))


def validate_id_token(raw: str, metadata: ProviderMetadata, *, client_id: str, nonce: str | None,
                      leeway: int = 60, now: float | None = None, hashed_nonce: bool = False,
                      algorithms: list[str] | None = None) -> dict[str, Any]:
    """Return the claims of a valid ID token or raise `IdTokenError` naming the failed check.

    `hashed_nonce`: MSAL sends SHA-256(nonce) to the provider, so the token carries the hash.
    `algorithms`: an asymmetric allow-list for generic providers (default RS256; never `none` or HMAC).
    """
    allowed = [name for name in (algorithms or ALLOWED_ALGORITHMS) if name in ASYMMETRIC_ALGORITHMS]
    try:
        header = jws.extract_compact(raw.encode()).protected
    except (JoseError, ValueError) as exc:
        raise IdTokenError("format", f"The ID token is malformed ({exc}).") from None
    algorithm = header.get("alg")
    if algorithm not in allowed:
        raise IdTokenError("algorithm", f"The ID token is signed with {algorithm!r}; only {', '.join(allowed)} "
                                        "accepted.")
    try:
        token = jwt.decode(raw, metadata.key_set(header.get("kid")), algorithms=allowed)
    except (JoseError, ValueError) as exc:
        raise IdTokenError("signature", f"The ID token signature is not valid ({type(exc).__name__}).") from None
    claims = dict(token.claims)
    issuer = expected_issuer(metadata.issuer, claims.get("tid"))
    if claims.get("iss") != issuer:
        raise IdTokenError("issuer", f"The ID token was issued by {claims.get('iss')!r}, expected {issuer!r}.")
    check_audience(claims, client_id)
    moment = time.time() if now is None else now
    for name in ("exp", "iat"):
        if not isinstance(claims.get(name), int | float):
            raise IdTokenError("lifetime", f"The ID token has no {name} claim.")
    if claims["exp"] + leeway < moment:
        raise IdTokenError("lifetime", "The ID token has expired (check the server clock).")
    if claims.get("nbf", claims["iat"]) - leeway > moment or claims["iat"] - leeway > moment:
        raise IdTokenError("lifetime", "The ID token is not valid yet (check the server clock).")
    if nonce is not None:
        expected = hashlib.sha256(nonce.encode()).hexdigest() if hashed_nonce else nonce
        if claims.get("nonce") != expected:
            raise IdTokenError("nonce", "The ID token does not answer this sign-in (nonce mismatch).")
    return claims
