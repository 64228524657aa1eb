"""ID token validation, done here because MSAL (≥1.38) no longer validates ID tokens at all.

Signature against the provider's JWKS (cached; fetched again once when a token names an unknown `kid`),
RS256 only, issuer (with `{tenantid}` replaced by the token's `tid` for multi-tenant metadata), audience,
`exp`/`nbf`/`iat` with leeway, and nonce.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ALLOWED_ALGORITHMS = ["RS256"]
ASYMMETRIC_ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


class IdTokenError(Exception):
    """The ID token failed a check; `check` names which one (for diagnostics and tests)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


@dataclass
class ProviderMetadata:
    """The parts of an OpenID discovery document that validation needs, plus its key set."""

    discovery_url: str
    session: requests.Session
    timeout: float = 10.0
    jwks_max_age: float = 24 * 3600
    _document: dict[str, Any] | None = None
    _keys: KeySet | None = None
    _keys_fetched_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def document(self) -> dict[str, Any]:
        if self._document is None:
            response = self.session.get(self.discovery_url, timeout=self.timeout)
            response.raise_for_status()
            self._document = response.json()
        return self._document

    @property
    def issuer(self) -> str:
        return str(self.document["issuer"])

    def key_set(self, kid: str | None) -> KeySet:
        """The JWKS, fetched again (once) when `kid` is not in the cached set or the cache is old."""
        with self._lock:
            stale = time.monotonic() - self._keys_fetched_at > self.jwks_max_age
            known = self._keys is not None and any(key.kid == kid for key in self._keys.keys)
            if self._keys is None or stale or (kid and not known):
                response = self.session.get(self.document["jwks_uri"], timeout=self.timeout)
                response.raise_for_status()
                self._keys = KeySet.import_key_set(response.json())
                self._keys_fetched_at = time.monotonic()
            return self._keys


def expected_issuer(metadata_issuer: str, tid: str | None) -> str:
    if "{tenantid}" in metadata_issuer:
        if not tid or not GUID.match(tid):
            raise IdTokenError("issuer", "The ID token has no valid tenant id (tid).")
        return metadata_issuer.replace("{tenantid}", tid)
    return metadata_issuer


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
    audience = claims.get("aud")
    if audience != client_id and not (isinstance(audience, list) and client_id in audience):
        raise IdTokenError("audience", "The ID token was issued for another application.")
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
