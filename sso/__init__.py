"""End-user sign-in: the /login page (local accounts now, SSO providers later), sign-out and the home page."""

from flask import Blueprint

bp = Blueprint("sso", __name__)

from sso import routes  # noqa: E402,F401  (routes attach themselves to bp)
