"""Entra ID v2.0 side of the tenant emulator (docs/microsoft.md §1-§3); being split by endpoint family."""

from emulator.identity.authorize import AADSTS, base_url, bp, token_error

__all__ = ["AADSTS", "base_url", "bp", "token_error"]
