"""Entra ID v2.0 side of the tenant emulator (docs/microsoft.md §1-§3): one module per endpoint family.

Importing the package imports every endpoint module, which adds its routes to the one `identity` blueprint
(`bp`, registered by `emulator.server.create_app`; templates use `url_for("identity.login")` and friends).
"""

from emulator.identity import (  # noqa: F401 - importing an endpoint module adds its routes to bp
    adminconsent,
    authorize,
    discovery,
    logout,
    mfa,
    signin,
    token,
    userinfo,
)
from emulator.identity.blueprint import bp

__all__ = ["bp"]
