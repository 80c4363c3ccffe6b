"""Knowledge errors. ``IngestError`` messages are shown to customers as a source's failure reason."""

from __future__ import annotations


class IngestError(Exception):
    """Permanent: the input cannot be ingested as it is (retrying will not help)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientIngestError(Exception):
    """Temporary: a network or service hiccup; the task retries with backoff."""


class UnsafeURLError(IngestError):
    """The URL points at a private, loopback, link-local or metadata address (SSRF protection)."""
