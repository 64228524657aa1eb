"""Office 365 (Microsoft Graph) access for the gateway: client, operations, import. No Flask views here."""
