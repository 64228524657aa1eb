"""Signing keys (>= 2, one active), ID tokens, access tokens and verify_access_token()."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from flask import current_app

from emulator import clock
from emulator.store import Store

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
KEEP_KEYS = 3


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey
    cert_der: bytes

    @property
    def public(self) -> rsa.RSAPublicKey:
        return self.private.public_key()

    def jwk(self) -> dict:
        numbers = self.public.public_numbers()
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": _int_b64(numbers.n),
                "e": _int_b64(numbers.e), "x5c": [base64.b64encode(self.cert_der).decode("ascii")]}


def _new_key() -> tuple[str, str, str]:
    """(kid, private PEM, cert PEM) for a fresh RSA key with a self-signed certificate (for x5c/x5t)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.emulator.local")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1825)).sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    kid = b64url(hashlib.sha1(der).digest())  # noqa: S324 - x5t is a SHA-1 thumbprint by definition
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return kid, pem, cert.public_bytes(serialization.Encoding.PEM).decode()


class KeyRing:
    """The signing keys kept in the store; cached in memory, reloaded after rotation."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self.keys: dict[str, SigningKey] = {}
        self.active_kid = ""
        self.verified: dict[str, dict] = {}  # token -> claims, so Graph calls skip the RSA check
        with store.transaction() as conn:
            count = conn.execute("SELECT count(*) FROM signing_keys").fetchone()[0]
            for n in range(max(0, 2 - count)):
                kid, pem, cert = _new_key()
                conn.execute("INSERT INTO signing_keys (kid, private_pem, cert_pem, created) VALUES (?, ?, ?, ?)",
                             (kid, pem, cert, clock.now() + n))
            if not store.get_setting("active_kid"):
                first = conn.execute("SELECT kid FROM signing_keys ORDER BY created LIMIT 1").fetchone()[0]
                store.set_setting("active_kid", first, conn)
        self.reload()

    def reload(self) -> None:
        rows = self.store.conn().execute(
            "SELECT kid, private_pem, cert_pem FROM signing_keys ORDER BY created").fetchall()
        keys = {}
        for row in rows:
            # Keys this emulator generated into its own store: the RSA consistency check (0.1 s a key) is skipped.
            private = serialization.load_pem_private_key(row["private_pem"].encode(), password=None,
                                                         unsafe_skip_rsa_key_validation=True)
            cert = x509.load_pem_x509_certificate(row["cert_pem"].encode())
            assert isinstance(private, rsa.RSAPrivateKey)
            keys[row["kid"]] = SigningKey(row["kid"], private, cert.public_bytes(serialization.Encoding.DER))
        with self._lock:
            self.keys = keys
            self.active_kid = self.store.get_setting("active_kid") or next(iter(keys))

    @property
    def active(self) -> SigningKey:
        return self.keys[self.active_kid]

    def rotate(self) -> dict:
        """Add a fresh key, make it the active one, keep the newest KEEP_KEYS keys (>= 2 published)."""
        kid, pem, cert = _new_key()
        with self.store.transaction() as conn:
            conn.execute("INSERT INTO signing_keys (kid, private_pem, cert_pem, created) VALUES (?, ?, ?, ?)",
                         (kid, pem, cert, clock.now()))
            old = conn.execute("SELECT kid FROM signing_keys ORDER BY created DESC LIMIT -1 OFFSET ?",
                               (KEEP_KEYS,)).fetchall()
            conn.executemany("DELETE FROM signing_keys WHERE kid = ?", [(r[0],) for r in old])
            self.store.set_setting("active_kid", kid, conn)
        previous = self.active_kid
        self.reload()
        self.verified.clear()
        return {"active_kid": kid, "previous_kid": previous, "kids": list(self.keys)}

    def jwks(self, issuer: str) -> dict:
        return {"keys": [dict(k.jwk(), issuer=issuer) for k in self.keys.values()]}

    def sign(self, claims: dict, *, x5t: bool = False) -> str:
        key = self.active
        header = {"typ": "JWT", "alg": "RS256", "kid": key.kid}
        if x5t:
            header["x5t"] = key.kid
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = key.private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)

    def decode(self, token: str) -> dict | None:
        """Claims of a token signed by one of our keys (signature only; no time checks)."""
        try:
            head, body, sig = token.split(".")
            header = json.loads(b64url_decode(head))
            key = self.keys.get(header.get("kid", ""))
            if key is None or header.get("alg") != "RS256":
                return None
            key.public.verify(b64url_decode(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
            claims = json.loads(b64url_decode(body))
        except (ValueError, InvalidSignature, UnicodeDecodeError, AttributeError):
            return None
        return claims if isinstance(claims, dict) else None


def keyring() -> KeyRing:
    return current_app.extensions["emulator.keys"]


def verify_access_token(token: str | None) -> dict | None:
    """Claims of a valid Graph access token issued by this emulator, else None (missing/invalid/expired)."""
    if not token:
        return None
    ring = keyring()
    claims = ring.verified.get(token)
    if claims is None:
        claims = ring.decode(token)
        if claims is None or claims.get("aud") not in (GRAPH_RESOURCE, GRAPH_APP_ID):
            return None
        if len(ring.verified) > 20000:
            ring.verified.clear()
        ring.verified[token] = claims
    now = clock.now()
    if not (claims.get("nbf", 0) - 300 <= now < claims.get("exp", 0)):
        return None
    return claims


def new_id() -> str:
    return secrets.token_hex(16)


def pairwise_sub(oid: str, client_id: str) -> str:
    return b64url(hashlib.sha256(f"{oid}|{client_id}|emulator".encode()).digest())


def client_info(oid: str, tid: str) -> str:
    return b64url(json.dumps({"uid": oid, "utid": tid}, separators=(",", ":")).encode())


# ---------------------------------------------------------------------------------------------- minting
# `base` is the emulator's base URL; `user` a row of the users table; `client` the dict of identity.get_client.

ID_TOKEN_TTL = 3600
MAX_GROUPS_CLAIM = 200


def user_access_token(base: str, client: dict, user: Any, scp: list[str], *, now: int, lifetime: int,
                      sid: str | None, ipaddr: str) -> str:
    """A delegated Graph access token (v1.0 shape: `scp`, `wids`, `upn`)."""
    tid, oid = user["tenant_id"], user["id"]
    claims: dict[str, Any] = {
        "aud": GRAPH_RESOURCE, "iss": f"{base}/{tid}/", "iat": now, "nbf": now, "exp": now + lifetime,
        "acr": "1", "amr": ["pwd"], "app_displayname": client["name"], "appid": client["client_id"],
        "appidacr": "1", "family_name": user["surname"], "given_name": user["given_name"], "idtyp": "user",
        "ipaddr": ipaddr, "name": user["display_name"], "oid": oid, "scp": " ".join(scp),
        "sub": pairwise_sub(oid, GRAPH_RESOURCE), "tenant_region_scope": "WW", "tid": tid,
        "unique_name": user["user_principal_name"], "upn": user["user_principal_name"],
        "uti": b64url(secrets.token_bytes(16)), "ver": "1.0"}
    if sid:
        claims["sid"] = sid
    roles = json.loads(user["directory_roles"])
    if roles:
        claims["wids"] = roles
    return keyring().sign(claims, x5t=True)


def app_access_token(base: str, tenant_id: str, client: dict, *, now: int, lifetime: int) -> str:
    """An app-only Graph access token: `roles` = the client's application permissions, no `oid`/`scp`."""
    sp_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant_id}:{client['client_id']}"))
    claims = {"aud": GRAPH_RESOURCE, "iss": f"{base}/{tenant_id}/", "iat": now, "nbf": now,
              "exp": now + lifetime, "app_displayname": client["name"], "appid": client["client_id"],
              "appidacr": "1", "idp": f"{base}/{tenant_id}/", "idtyp": "app",
              "roles": list(client["application"]), "sub": sp_id, "tenant_region_scope": "WW", "tid": tenant_id,
              "uti": b64url(secrets.token_bytes(16)), "ver": "1.0"}
    return keyring().sign(claims, x5t=True)


def id_token(base: str, client: dict, user: Any, oidc: list[str], *, nonce: str | None, sid: str | None,
             auth_time: float, now: int, groups: list[str] | None, changes: dict[str, Any] | None = None,
             roles: list[str] | None = None, acrs: list[str] | None = None) -> str:
    """A v2.0 ID token (docs/microsoft.md §1.7). `groups` None = the client does not ask for group claims; more than
    200 groups become the `_claim_names`/`_claim_sources` overage. `roles`: the values of the app roles assigned to
    the user (directly or through a group), absent when none. `acrs`: the authentication contexts satisfied,
    only when the `claims` parameter asked (§1.9). `changes`: the control API's tampering
    (`/_emulator/id-token-claims`; None removes a claim)."""
    tid, oid = user["tenant_id"], user["id"]
    claims: dict[str, Any] = {
        "aud": client["client_id"], "iss": f"{base}/{tid}/v2.0", "iat": now, "nbf": now,
        "exp": now + ID_TOKEN_TTL, "auth_time": int(auth_time), "aio": b64url(secrets.token_bytes(24)),
        "ver": "2.0", "tid": tid, "sub": pairwise_sub(oid, client["client_id"]), "oid": oid,
        "preferred_username": user["user_principal_name"], "name": user["display_name"],
        "rh": "0.AXkA" + b64url(secrets.token_bytes(12)), "uti": b64url(secrets.token_bytes(16)),
        "login_hint": b64url(json.dumps({"uid": oid, "utid": tid, "upn": user["user_principal_name"]},
                                        separators=(",", ":")).encode()),
    }
    if nonce:
        claims["nonce"] = nonce
    if sid:
        claims["sid"] = sid
    if "email" in oidc and user["mail"]:
        claims["email"] = user["mail"]
    if groups is not None:
        if len(groups) > MAX_GROUPS_CLAIM:
            claims["_claim_names"] = {"groups": "src1"}
            claims["_claim_sources"] = {"src1": {
                "endpoint": f"https://graph.windows.net/{tid}/users/{oid}/getMemberObjects"}}
        else:
            claims["groups"] = groups
    wids = json.loads(user["directory_roles"])
    if wids and groups is not None:  # like `groups`, `wids` needs groupMembershipClaims on the application
        claims["wids"] = wids
    if roles:
        claims["roles"] = roles
    if acrs is not None:
        claims["acrs"] = acrs
    for name, value in (changes or {}).items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return keyring().sign(claims)
