"""JSON API under /api/v1/: the Office 365 operations for scripts and processes (API key or browser session)."""

from flask import Blueprint

from core.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # session callers are CSRF-checked in api.auth for unsafe methods; API keys need no CSRF

from api import openapi, views  # noqa: E402,F401  (routes attach themselves to bp)
