"""Where Microsoft is (or the emulator standing in for it), and one HTTP session that trusts it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import requests

GRAPH_RESOURCE = "https://graph.microsoft.com"


class TimeoutSession(requests.Session):
    """A session with a default timeout: MSAL ignores its own `timeout` when given an `http_client`."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


@dataclass(frozen=True)
class MicrosoftSettings:
    client_id: str
    client_secret: str
    authority_host: str
    graph_url: str
    ca_bundle: str | None = None
    timeout: float = 15.0  # seconds, for each call to the identity provider

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MicrosoftSettings:
        return cls(
            client_id=config.get("O365_CLIENT_ID") or "",
            client_secret=config.get("O365_CLIENT_SECRET") or "",
            authority_host=config["O365_AUTHORITY_HOST"],
            graph_url=config["GRAPH_API_URL"],
            ca_bundle=config.get("O365_CA_BUNDLE"),
            timeout=float(config.get("O365_HTTP_TIMEOUT", 15.0)),
        )

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @property
    def verify(self) -> str | bool:
        return self.ca_bundle or True

    def authority(self, tenant: str = "organizations") -> str:
        return f"{self.authority_host}/{tenant}"

    def http_session(self) -> requests.Session:
        """A session whose `verify` cannot be overridden by REQUESTS_CA_BUNDLE (docs/microsoft.md §4.3)."""
        session = TimeoutSession(self.timeout)
        session.trust_env = False
        session.verify = self.verify
        return session

    @cached_property
    def shared_session(self) -> requests.Session:
        return self.http_session()
