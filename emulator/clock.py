"""Emulator time: the wall clock plus the offset set through the control API (clock shift)."""

from __future__ import annotations

import time

from flask import current_app, has_app_context

_global_offset = 0.0


def set_global_offset(offset: float) -> None:
    """Offset used outside an app context (and by apps without settings)."""
    global _global_offset
    _global_offset = float(offset)


def offset() -> float:
    if has_app_context():
        settings = current_app.extensions.get("emulator.settings")
        if settings is not None:
            return settings.clock_offset
    return _global_offset


def now() -> float:
    """Seconds since the epoch as the emulated tenant sees them."""
    return time.time() + offset()
