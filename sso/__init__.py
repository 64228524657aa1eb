"""End-user sign-in: local accounts and OpenID Connect providers (Office 365 datasources or generic issuers),
server-side sessions, sign-out channels and forward auth for other web apps."""

from flask import Blueprint

bp = Blueprint("sso", __name__)

# Each module attaches its routes or hooks to bp when imported.
from sso import (  # noqa: E402,F401
    denied,
    forward_auth,
    local_signin,
    logout_channels,
    preferences,
    provider_origins,
    routes,
    signin,
)
