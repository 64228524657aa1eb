"""Secrets at rest (token caches, client secrets): MultiFernet over TOKEN_ENCRYPTION_KEYS, newest key first."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """Raises `InvalidToken` when no configured key opens it (a key was dropped too early)."""
        return self._fernet.decrypt(ciphertext.encode()).decode()

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the newest key."""
        return self._fernet.rotate(ciphertext.encode()).decode()


def secret_box() -> SecretBox:
    box = current_app.extensions.get("secret_box")
    if box is None:
        box = current_app.extensions["secret_box"] = SecretBox(current_app.config["TOKEN_ENCRYPTION_KEYS"])
    return box


__all__ = ["InvalidToken", "SecretBox", "secret_box"]
