"""Knowledge errors. ``IngestError`` messages are shown to customers as a source's failure reason."""

from __future__ import annotations

from config.errors import ApplicationError


class IngestError(ApplicationError):
    """Permanent: the input cannot be ingested as it is (retrying will not help)."""

    code = "ingest_failed"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)

    @property
    def reason(self) -> str:
        return self.message


class TransientIngestError(Exception):
    """Temporary: a network or service hiccup; the task retries with backoff (never shown as such)."""


class UnsafeURLError(IngestError):
    """The URL points at a private, loopback, link-local or metadata address (SSRF protection)."""

    code = "unsafe_url"


class TranscriptionSettingsError(ApplicationError):
    """An organization's transcription provider cannot be used as entered (e.g. an internal address)."""

    code = "invalid_transcription_settings"
