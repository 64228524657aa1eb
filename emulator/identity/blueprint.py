"""The `identity` blueprint the endpoint modules add routes to, with static files (docs/microsoft.md §1.1)."""

from flask import Blueprint

bp = Blueprint("identity", __name__, static_folder="../templates/static", static_url_path="/emulator-static")
