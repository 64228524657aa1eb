"""Where the gateway sends people: our own absolute URLs and the checked `next` path (sign-in and sign-out)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, request


def safe_next(target: str | None) -> str | None:
    """Accept only a same-site relative path ("/x"), never "//host", "/\\host" or a scheme."""
    if not target or len(target) > 2048 or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ch in target for ch in "\\\r\n\t"):
        return None
    return target


def public_url(path: str) -> str:
    """An absolute URL of ours: PUBLIC_BASE_URL when set, else the request's (https behind a trusted proxy)."""
    base = current_app.config.get("PUBLIC_BASE_URL") or request.host_url.rstrip("/")
    return base + path
