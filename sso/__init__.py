"""End-user sign-in: local accounts and OpenID Connect providers (Office 365 datasources or generic issuers),
server-side sessions, sign-out channels and forward auth for other web apps."""

from flask import Blueprint

bp = Blueprint("sso", __name__)

from sso import forward_auth, logout_channels, preferences, routes, signin  # noqa: E402,F401  (routes attach themselves to bp)
