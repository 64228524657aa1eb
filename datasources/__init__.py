"""A datasource at work: the operation service that pages and API share (service.py), the grant and its
keep-alive (grant.py, keep_alive.py), the authorization bookkeeping (authorization.py), Change tenant
(tenant_change.py) and `flask datasources`.

Below the web layers and the feature packages, above jobs/ and the Microsoft client (office365/), which gets
plain values from here and never reads the app's config or database itself.
"""

from __future__ import annotations

from flask import Flask

from datasources import keep_alive
from datasources.cli import datasources_cli


def init_app(app: Flask) -> None:
    """`flask datasources`, and the keep-alive job kind in the jobs runner's registry."""
    app.cli.add_command(datasources_cli)
    keep_alive.init_app(app)
