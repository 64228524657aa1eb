"""A datasource's grant at work: its MSAL token cache (encrypted in the database) as the Graph client's token
source, the re-authorization dates, the connection test and the keep-alive.

Silent refresh stores the rotated tokens every time; a refused refresh marks the datasource as needing
re-authorization, records the AADSTS reason, and raises `ReauthorizationRequired`. The Microsoft side (MSAL) is
office365/token_cache.py, which gets the settings and the decrypted cache from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from flask import current_app

from core.crypto import InvalidToken, secret_box
from core.extensions import db
from core.models import Datasource, utcnow
from office365.authorization import WRITE_SCOPES
from office365.errors import Office365Error, ReauthorizationRequired
from office365.graph import GraphClient
from office365.settings import MicrosoftSettings
from office365.token_cache import GrantRefused, redeem_silently

REAUTHORIZE_AFTER = timedelta(days=182)
REAUTHORIZE_WARNING = timedelta(days=14)


def microsoft_settings() -> MicrosoftSettings:
    settings = current_app.extensions.get("microsoft_settings")
    if settings is None:
        settings = current_app.extensions["microsoft_settings"] = MicrosoftSettings.from_config(current_app.config)
    return settings


def reauthorization_due(datasource: Datasource) -> datetime | None:
    return datasource.authorized_at + REAUTHORIZE_AFTER if datasource.authorized_at else None


def reauthorization_warning(datasource: Datasource) -> str | None:
    due = reauthorization_due(datasource)
    if due is None or datasource.status == Datasource.INCOMPLETE:
        return None
    if due <= utcnow():
        return f"Re-authorization was due on {due:%Y-%m-%d}: click Re-Authorize."
    if due - utcnow() <= REAUTHORIZE_WARNING:
        return f"Re-authorization is due on {due:%Y-%m-%d}: click Re-Authorize before then."
    return None


def needs_write_reauthorization(datasource: Datasource) -> bool:
    """Read and write was ticked after the grant was made without the write scopes."""
    return (datasource.read_write and datasource.status != Datasource.INCOMPLETE
            and not set(WRITE_SCOPES) <= datasource.scopes)


def mark_needs_reauthorization(datasource: Datasource, reason: str) -> None:
    datasource.status = Datasource.NEEDS_REAUTHORIZATION
    datasource.last_error = reason
    datasource.last_error_at = utcnow()
    db.session.commit()


@dataclass
class DatasourceGrant:
    """The Graph client's `TokenSource` for one datasource."""

    datasource: Datasource
    settings: MicrosoftSettings

    @property
    def granted_scopes(self) -> frozenset[str]:
        return self.datasource.scopes

    def _stored_cache(self) -> str | None:
        if not self.datasource.token_cache:
            return None
        try:
            return secret_box().decrypt(self.datasource.token_cache)
        except InvalidToken:
            self._refuse("the stored tokens cannot be decrypted with TOKEN_ENCRYPTION_KEYS (was a key removed?)")

    def _refuse(self, reason: str) -> NoReturn:
        mark_needs_reauthorization(self.datasource, reason)
        raise ReauthorizationRequired(f"The Office 365 datasource \"{self.datasource.name}\" needs to be "
                                      f"re-authorized: {reason}. An administrator must click Re-Authorize.")

    def access_token(self, *, force_refresh: bool = False) -> str:
        if self.datasource.status == Datasource.INCOMPLETE or not self.datasource.tenant_id:
            raise ReauthorizationRequired(f"The datasource \"{self.datasource.name}\" has not been authorized yet: "
                                          "an administrator must click Authorize.")
        if self.datasource.status == Datasource.NEEDS_REAUTHORIZATION:
            force_refresh = True  # a cached access token must not hide a refused grant; recover if it works again
        try:
            token = redeem_silently(self.settings, tenant=self.datasource.tenant_id,
                                    serialized_cache=self._stored_cache(), scopes=self.granted_scopes,
                                    force_refresh=force_refresh)
        except GrantRefused as exc:
            self._refuse(str(exc))
        if token.rotated_cache is not None:
            self.datasource.token_cache = secret_box().encrypt(token.rotated_cache)
            self.datasource.last_refresh_ok_at = utcnow()
            if self.datasource.status == Datasource.NEEDS_REAUTHORIZATION:
                self.datasource.status = Datasource.READY
            db.session.commit()
        return token.access_token


def graph_client(datasource: Datasource) -> GraphClient:
    settings = microsoft_settings()
    return GraphClient(settings.graph_url, DatasourceGrant(datasource, settings), ca_bundle=settings.ca_bundle)


@dataclass
class ConnectionTest:
    ok: bool
    message: str
    tenant_name: str | None = None


def run_connection_test(datasource: Datasource, *, prove_grant: bool = True) -> ConnectionTest:
    """Prove the grant, then a Graph read that needs the read scopes: the organization, and one user.

    Proving the grant means redeeming the refresh token: a cached access token stays valid for up to an hour after
    consent is removed or the grant revoked in Office 365, so reading Graph with it alone would hide that.
    `prove_grant=False` only right after authorization, when the grant was made a moment ago.
    """
    grant = DatasourceGrant(datasource, microsoft_settings())
    client = GraphClient(grant.settings.graph_url, grant, ca_bundle=grant.settings.ca_bundle)
    try:
        if prove_grant:
            grant.access_token(force_refresh=True)
        organization = client.get_page("/organization", params={"$select": "id,displayName"}).items
        client.get_page("/users", params={"$top": "1", "$select": "id"})
    except ReauthorizationRequired as exc:
        if datasource.status == Datasource.NEEDS_REAUTHORIZATION and datasource.last_error:
            return ConnectionTest(False, "Connection test failed: this data source needs re-authorization. "
                                         f"{datasource.last_error} Click Re-Authorize.")
        return ConnectionTest(False, f"Connection test failed: {exc}")
    except Office365Error as exc:
        return ConnectionTest(False, f"Connection test failed: {exc}")
    name = organization[0].get("displayName") if organization else None
    return ConnectionTest(True, "Connection test succeeded", name)


def keep_alive(datasource: Datasource) -> ConnectionTest:
    """Redeem the refresh token now (storing the rotated one) so the 90-day inactivity limit is never hit."""
    try:
        DatasourceGrant(datasource, microsoft_settings()).access_token(force_refresh=True)
    except Office365Error as exc:
        return ConnectionTest(False, str(exc))
    return ConnectionTest(True, "Tokens refreshed")
