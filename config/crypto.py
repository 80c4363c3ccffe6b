"""Encryption at rest for provider API keys (bots' and transcription providers'), with key rotation.

``settings.FIELD_ENCRYPTION_KEYS`` lists keys, newest first: the first encrypts, all of them decrypt, so
an operator rotates by putting a new key in front and running ``manage.py rotate_encryption_keys`` before
removing the old one. A key may be a Fernet key or any long passphrase (a Fernet key is derived from it).
With no keys configured, one is derived from SECRET_KEY so development works without setup.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    """The value was encrypted with a key that is no longer configured (or was tampered with)."""


def _fernet(key: str) -> Fernet:
    try:
        return Fernet(key.encode())
    except ValueError:
        # Not a Fernet key: derive one, so operators may use any high-entropy secret.
        digest = hashlib.sha256(b"parlor-field-encryption:" + key.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(digest))


def _keys() -> list[str]:
    keys = [key for key in getattr(settings, "FIELD_ENCRYPTION_KEYS", []) if key]
    return keys or [settings.SECRET_KEY]


def _multi() -> MultiFernet:
    return MultiFernet([_fernet(key) for key in _keys()])


def encrypt(plaintext: str) -> str:
    return _multi().encrypt(plaintext.encode()).decode() if plaintext else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _multi().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("Stored secret cannot be decrypted with the configured keys.") from None


def rotate(token: str) -> str:
    """Re-encrypt ``token`` with the current first key (no-op for empty values)."""
    if not token:
        return ""
    try:
        return _multi().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("Stored secret cannot be decrypted with the configured keys.") from None
