"""Who signed in: the user keyed by (tid, oid) for Office 365 or (issuer, sub) otherwise, never by email, and
their groups (from the `groups` claim, or from Graph on overage, cached with a TTL)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func

from core.extensions import db
from core.models import Datasource, Role, User, role_by_name, utcnow
from datasources.grant import graph_client
from office365.errors import Office365Error
from sso.models import GroupCache, SsoIdentity, SsoProvider

log = logging.getLogger(__name__)
GROUP_TYPE = "#microsoft.graph.group"


class SignInRefused(Exception):
    """A valid identity that may not sign in; `kind` picks the page (not_added, disabled, conflict)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _address(value: Any) -> str | None:
    if isinstance(value, str) and "@" in value and len(value.strip()) <= 320:
        return value.strip().lower()
    return None


def email_verified(claims: dict[str, Any]) -> bool:
    """`email_verified` is true (a boolean; some providers send the string "true")."""
    value = claims.get("email_verified")
    return value is True or (isinstance(value, str) and value.lower() == "true")


def trusted_email(provider: SsoProvider, claims: dict[str, Any]) -> str | None:
    """The address allow-lists may rely on, or None.

    Office 365: `email`, else `preferred_username`/`upn` (names the tenant controls). A generic provider: `email`
    only with `email_verified: true`, or when the provider is marked as omitting the claim
    (`trust_unverified_email`); never `preferred_username`, which anyone may choose at many providers.
    """
    if provider.kind == SsoProvider.OFFICE365:
        for name in ("email", "preferred_username", "upn"):
            if (found := _address(claims.get(name))) is not None:
                return found
        return None
    if email_verified(claims) or provider.trust_unverified_email:
        return _address(claims.get("email"))
    return None


def placeholder_email(claims: dict[str, Any], issuer: str) -> str:
    """A stable address that matches no allow-list: the subject at the issuer's host."""
    host = urlsplit(issuer).hostname or "sso.invalid"
    return f"{str(claims.get('sub', 'unknown'))[:200]}@{host}".lower()


def resolve_user(provider: SsoProvider, claims: dict[str, Any], *, issuer: str, create: bool) -> User:
    """Find (or create) the user of a validated ID token, refresh their profile, refuse disabled users."""
    office365 = provider.kind == SsoProvider.OFFICE365
    verified = trusted_email(provider, claims)
    email = verified or placeholder_email(claims, issuer)
    name = str(claims.get("name") or "")[:256]
    identity: SsoIdentity | None = None
    if office365:
        user = db.session.scalar(db.select(User).filter_by(tenant_id=claims["tid"], object_id=claims["oid"]))
    else:
        identity = db.session.scalar(db.select(SsoIdentity).filter_by(issuer=issuer, subject=str(claims["sub"])))
        user = db.session.get(User, identity.user_id) if identity else None
    if user is None:
        if not create:
            raise SignInRefused("not_added", "Your account has not been added to this gateway yet.")
        if db.session.scalar(db.select(User.id).where(func.lower(User.email) == email)) is not None:
            raise SignInRefused("conflict", "Another account already uses this email address; an administrator "
                                            "must link or rename it.")
        user = User(email=email, display_name=name or email, roles=[role_by_name(Role.USER)])
        if office365:
            user.tenant_id, user.object_id = claims["tid"], claims["oid"]
        db.session.add(user)
        db.session.flush()
        if not office365:
            db.session.add(SsoIdentity(issuer=issuer, subject=str(claims["sub"]), user_id=user.id))
    if not user.active:
        raise SignInRefused("disabled", "Your account is disabled. Ask an administrator to enable it.")
    if name:
        user.display_name = name
    if email != user.email and db.session.scalar(  # what this token vouches for, or the placeholder
            db.select(User.id).where(func.lower(User.email) == email, User.id != user.id)) is None:
        user.email = email
    user.last_sign_in_at = utcnow()
    return user


@dataclass
class Groups:
    ids: list[str] | None  # None = unknown (overage lookup failed)
    source: str


def groups_of(provider: SsoProvider, claims: dict[str, Any], *, ttl_minutes: int) -> Groups:
    """The `groups` claim; on overage (`_claim_names.groups`) Graph transitiveMemberOf with the datasource grant."""
    if isinstance(claims.get("groups"), list):
        return Groups([str(g) for g in claims["groups"]], "claim")
    overage = "groups" in (claims.get("_claim_names") or {}) or claims.get("hasgroups")
    if not overage:
        return Groups([], "none in token")
    if provider.kind != SsoProvider.OFFICE365 or not provider.datasource_id:
        return Groups(None, "overage (no directory to ask)")
    tid, oid = claims["tid"], claims["oid"]
    cached = db.session.get(GroupCache, (tid, oid))
    if cached is not None and cached.fetched_at > utcnow() - timedelta(minutes=ttl_minutes):
        return Groups(list(cached.groups), "overage (cached)")
    datasource = db.session.get(Datasource, provider.datasource_id)
    try:

        client = graph_client(datasource)
        try:
            ids = [item["id"] for item in client.iter_items(f"/users/{oid}/transitiveMemberOf",
                                                            params={"$select": "id", "$top": "999"})
                   if item.get("@odata.type", GROUP_TYPE) == GROUP_TYPE]  # not directory roles
        finally:
            client.close()
    except Office365Error as exc:
        log.warning("groups overage lookup failed for %s: %s", oid, type(exc).__name__)
        return Groups(None, f"overage (Graph failed: {type(exc).__name__})")
    if cached is None:
        db.session.add(GroupCache(tenant_id=tid, object_id=oid, groups=ids, fetched_at=utcnow()))
    else:
        cached.groups, cached.fetched_at = ids, utcnow()
    return Groups(ids, "overage (Graph transitiveMemberOf)")
