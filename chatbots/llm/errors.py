"""Classifying provider failures, retry timing, and keeping keys out of every message."""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections.abc import Sequence

import httpx
import openai
from django.conf import settings

from chatbots.llm.endpoints import Endpoint
from chatbots.llm.presets import PLACEHOLDER_KEY
from config.outbound import OutboundRefused, UnresolvableHost

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_KEY_LIKE = re.compile(r"\b(sk|pk|key|gsk|xai|AIza)[-_A-Za-z0-9]{12,}")


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Remove the given secrets, and anything shaped like an API key, from text we log or show."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret != PLACEHOLDER_KEY:
            text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


class AttemptFailed(Exception):
    def __init__(
        self, reason: str, *, retryable: bool, retry_after: float | None = None, status: int | None = None
    ):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


def retry_after_seconds(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return max(float(headers["retry-after-ms"]) / 1000, 0.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(float(value), 0.0)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(when.timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, OverflowError):
        return None


def describe_error(exc: BaseException, endpoint: Endpoint) -> AttemptFailed:
    """Classify an SDK/transport error; the reason is redacted and safe to log and show to an admin."""
    if isinstance(exc, AttemptFailed):
        return exc
    if isinstance(exc, openai.APIStatusError):
        message = exc.message
        if isinstance(exc.body, dict) and isinstance(exc.body.get("message"), str):
            message = exc.body["message"]
        reason = f"HTTP {exc.status_code} from {endpoint.provider}: {message}"
        return AttemptFailed(
            redact(reason, [endpoint.api_key]),
            retryable=exc.status_code in RETRYABLE_STATUS,
            retry_after=retry_after_seconds(exc.response),
            status=exc.status_code,
        )
    cause = exc.__cause__ or exc
    if isinstance(cause, OutboundRefused):
        # The outbound guard refused the address or a redirect: a setting to fix, not a hiccup to retry
        # (except a name that did not resolve, which may be a passing DNS failure).
        reason = f"{endpoint.provider} at {endpoint.base_url}: {cause}"
        return AttemptFailed(
            redact(reason, [endpoint.api_key]), retryable=isinstance(cause, UnresolvableHost)
        )
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        if isinstance(cause, httpx.ConnectTimeout):
            reason = f"could not connect to {endpoint.base_url} within {settings.LLM_CONNECT_TIMEOUT:g}s"
            return AttemptFailed(reason, retryable=True)
        return AttemptFailed(f"{endpoint.provider} timed out", retryable=False)
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        detail = str(cause).strip()[:200] or "no details"
        reason = f"connection to {endpoint.provider} at {endpoint.base_url} failed ({type(cause).__name__}: {detail})"
        return AttemptFailed(redact(reason, [endpoint.api_key]), retryable=True)
    if isinstance(exc, openai.APIError):
        return AttemptFailed(
            redact(f"{endpoint.provider} error: {exc.message}", [endpoint.api_key]), retryable=True
        )
    return AttemptFailed(f"unexpected {type(exc).__name__} from {endpoint.provider}", retryable=False)


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter, never shorter than what ``Retry-After`` asked for."""
    base = settings.LLM_RETRY_BACKOFF * (2**attempt)
    delay = base / 2 + random.uniform(0, base / 2)
    if retry_after is not None:
        delay = max(delay, retry_after + random.uniform(0, min(base / 2, 0.25)))
    return delay
