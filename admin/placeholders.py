"""Administration pages whose issue has not landed yet: they say so instead of 404 (none left)."""
