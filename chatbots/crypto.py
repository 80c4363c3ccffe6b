"""Encryption at rest for provider API keys: moved to ``config.crypto`` (knowledge's transcription keys use
it too); kept here so existing imports keep working."""

from __future__ import annotations

from config.crypto import DecryptionError, decrypt, encrypt, rotate

__all__ = ["DecryptionError", "decrypt", "encrypt", "rotate"]
