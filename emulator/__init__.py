"""Tenant emulator: a local Microsoft Entra ID + Microsoft Graph v1.0 over HTTPS (never imported by the product)."""
