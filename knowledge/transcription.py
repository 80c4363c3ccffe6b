"""Speech to text through any OpenAI-compatible ``/audio/transcriptions`` endpoint (OpenAI, Groq,
faster-whisper or vLLM servers), asking for ``verbose_json`` so each segment keeps its start and end.

An organization's own provider (``TranscriptionSettings``, key encrypted) wins over the deployment's
``TRANSCRIPTION_*`` settings; with neither, ``provider_for`` returns None and the source says so. Requests
go through Parlor's outbound guard (config/outbound.py): an organization's address must be public (private
only with ``LLM_ALLOW_PRIVATE_BASE_URLS``, as for bots' model servers); the operator's may be private.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from config import outbound
from config.crypto import DecryptionError
from knowledge.exceptions import IngestError, TransientIngestError
from knowledge.models import TranscriptionSettings


class Segment(TypedDict):
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Provider:
    base_url: str
    model: str
    api_key: str
    usd_per_minute: Decimal | None
    allow_private: bool

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc[:255]


def _price(value: str) -> Decimal | None:
    try:
        return Decimal(value) if value.strip() else None
    except InvalidOperation:
        return None


def provider_for(*, organization_id: int) -> Provider | None:
    """The provider that transcribes this organization's recordings, or None when none is configured."""
    own = TranscriptionSettings.objects.filter(organization_id=organization_id).first()
    if own is not None:
        try:
            key = own.get_api_key()
        except DecryptionError:
            raise IngestError(
                "The transcription provider's API key cannot be decrypted any more; enter it again."
            ) from None
        return Provider(
            base_url=own.base_url, model=own.model, api_key=key, usd_per_minute=own.usd_per_minute,
            allow_private=settings.LLM_ALLOW_PRIVATE_BASE_URLS,
        )  # fmt: skip
    if settings.TRANSCRIPTION_BASE_URL:
        return Provider(
            base_url=settings.TRANSCRIPTION_BASE_URL, model=settings.TRANSCRIPTION_MODEL,
            api_key=settings.TRANSCRIPTION_API_KEY, usd_per_minute=_price(settings.TRANSCRIPTION_USD_PER_MINUTE),
            allow_private=True,
        )  # fmt: skip
    return None


NO_PROVIDER = (
    "Audio and video need a transcription provider, and none is configured. Add one under Knowledge › "
    "Transcription providers (or set TRANSCRIPTION_BASE_URL for the whole deployment), then re-sync."
)


def transcribe(provider: Provider, path: Path) -> tuple[list[Segment], float]:
    """One audio file's segments (times from the file's start) and its length in seconds."""
    import openai

    timeout = settings.TRANSCRIPTION_TIMEOUT
    http_client = outbound.client(
        allow_private=provider.allow_private, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))
    )
    client = openai.OpenAI(
        base_url=provider.base_url, api_key=provider.api_key or "not-needed", max_retries=1,
        timeout=timeout, http_client=http_client,
    )  # fmt: skip
    try:
        with path.open("rb") as audio:
            result = client.audio.transcriptions.create(
                model=provider.model, file=(path.name, audio, "audio/mpeg"),
                response_format="verbose_json", timestamp_granularities=["segment"],
            )  # fmt: skip
    except openai.AuthenticationError:
        raise IngestError(
            f"The transcription provider at {provider.host} refused the API key; check it."
        ) from None
    except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
        if isinstance(exc.__cause__, outbound.OutboundRefused):
            raise IngestError(f"The transcription provider's address is refused: {exc.__cause__}") from None
        raise TransientIngestError(f"Transcription service unavailable: {type(exc).__name__}") from exc
    except openai.APIStatusError as exc:
        # The vendor's message may echo the request (or the key): only its status is shown.
        raise IngestError(
            f"The transcription provider at {provider.host} refused the recording (HTTP {exc.status_code})."
        ) from None
    except outbound.OutboundRefused as exc:
        raise IngestError(f"The transcription provider's address is refused: {exc}") from None
    finally:
        client.close()
    segments: list[Segment] = []
    for item in getattr(result, "segments", None) or []:
        data = item if isinstance(item, dict) else item.model_dump()
        text = " ".join(str(data.get("text", "")).split())
        if text:
            segments.append(
                {"start": float(data.get("start") or 0), "end": float(data.get("end") or 0), "text": text}
            )
    if not segments and (text := " ".join(str(getattr(result, "text", "") or "").split())):
        segments.append({"start": 0.0, "end": 0.0, "text": text})  # a server without segment times
    duration = float(getattr(result, "duration", 0) or 0) or max((s["end"] for s in segments), default=0.0)
    return segments, duration
