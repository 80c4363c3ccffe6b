"""One async provider client over ``openai.AsyncOpenAI`` for every OpenAI-compatible endpoint.

Per answer: try the bot's model, retrying 429/5xx/connection errors with exponential backoff and jitter
(at least as long as ``Retry-After`` asks); then the bot's fallback model; then the offline extractive
provider. Three limits apply to each attempt: connecting (``LLM_CONNECT_TIMEOUT``), the first token
(``LLM_FIRST_TOKEN_TIMEOUT``, also the longest silence allowed mid-stream) and the whole answer
(``LLM_TOTAL_TIMEOUT``). A timed-out model is not retried: it goes straight to the fallback, so a dead
primary costs one first-token limit, not several.

Cancelling the task that consumes ``stream_chat`` (the visitor left) cancels the pending read, and the
``finally`` below closes the HTTP response, which closes the upstream connection at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import random
import re
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import openai
from django.conf import settings

from chatbots.llm.events import Completed, LLMEvent, LLMUnavailable, Passage, TextDelta, Usage
from chatbots.llm.offline import offline_stream
from chatbots.llm.presets import PLACEHOLDER_KEY, PRESETS, Provider
from chatbots.llm.pricing import estimate_cost
from chatbots.llm.prompt import build_messages, last_user_message

if TYPE_CHECKING:
    from chatbots.models import Bot

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Endpoint:
    """Where one model lives. ``repr`` never shows the key."""

    provider: str
    base_url: str
    model: str
    api_key: str
    stream_usage: bool = True

    def __repr__(self) -> str:
        return f"Endpoint(provider={self.provider!r}, base_url={self.base_url!r}, model={self.model!r})"

    __str__ = __repr__


def _endpoint(provider: str, base_url: str, model: str, api_key: str) -> Endpoint | None:
    """An endpoint for a preset plus the bot's overrides, or None when it is not usable as configured."""
    if provider == Provider.OFFLINE:
        return None
    if provider == Provider.DEFAULT:
        if not (settings.LLM_DEFAULT_API_KEY or settings.LLM_DEFAULT_BASE_URL):
            return None
        return Endpoint(
            provider="default",
            base_url=settings.LLM_DEFAULT_BASE_URL or PRESETS[Provider.OPENAI].base_url,
            model=model or settings.LLM_DEFAULT_MODEL,
            api_key=settings.LLM_DEFAULT_API_KEY or PLACEHOLDER_KEY,
        )
    preset = PRESETS.get(provider)
    if preset is None:
        return None
    url = base_url or preset.base_url
    model = model or preset.default_model
    if not url or not model or (preset.needs_key and not api_key):
        return None
    return Endpoint(provider, url, model, api_key or PLACEHOLDER_KEY, preset.stream_usage)


def endpoints_for(bot: Bot) -> list[Endpoint]:
    """The bot's model and its fallback model, in the order to try them (possibly none: offline)."""
    primary = _endpoint(bot.provider, bot.base_url, bot.model, bot.get_api_key())
    endpoints = [primary] if primary else []
    if bot.fallback_provider or bot.fallback_model:
        if bot.fallback_provider and bot.fallback_provider != bot.provider:
            fallback = _endpoint(
                bot.fallback_provider, bot.fallback_base_url, bot.fallback_model, bot.get_fallback_api_key()
            )
        else:  # same provider: another model (or URL/key) at the same vendor
            fallback = _endpoint(
                bot.provider,
                bot.fallback_base_url or bot.base_url,
                bot.fallback_model or bot.model,
                bot.get_fallback_api_key() or bot.get_api_key(),
            )
        if fallback and fallback != primary:
            endpoints.append(fallback)
    return endpoints


# --- clients --------------------------------------------------------------------------------------
# An httpx connection pool belongs to the event loop that opened it, so clients are cached per loop.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(
        connect=settings.LLM_CONNECT_TIMEOUT,
        read=settings.LLM_FIRST_TOKEN_TIMEOUT,
        write=settings.LLM_CONNECT_TIMEOUT,
        pool=settings.LLM_CONNECT_TIMEOUT,
    )


def get_client(endpoint: Endpoint) -> openai.AsyncOpenAI:
    """The shared client for this endpoint and key (retries are ours, so the SDK's are switched off)."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    cache_key = (endpoint.base_url, hashlib.sha256(endpoint.api_key.encode()).hexdigest())
    client = per_loop.get(cache_key)
    if client is None:
        client = openai.AsyncOpenAI(
            base_url=endpoint.base_url, api_key=endpoint.api_key, max_retries=0, timeout=_timeout()
        )
        per_loop[cache_key] = client
    return client


# --- errors ---------------------------------------------------------------------------------------
_KEY_LIKE = re.compile(r"\b(sk|pk|key|gsk|xai|AIza)[-_A-Za-z0-9]{12,}")


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Remove the given secrets, and anything shaped like an API key, from text we log or show."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret != PLACEHOLDER_KEY:
            text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


class AttemptFailed(Exception):
    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


def _retry_after(response: httpx.Response | None) -> float | None:
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
            retry_after=_retry_after(exc.response),
        )
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        return AttemptFailed(f"{endpoint.provider} timed out", retryable=False)
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        cause = exc.__cause__ or exc
        return AttemptFailed(
            redact(
                f"connection to {endpoint.provider} at {endpoint.base_url} failed: {type(cause).__name__}",
                [endpoint.api_key],
            ),
            retryable=True,
        )
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


# --- one attempt ----------------------------------------------------------------------------------
def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class Attempt:
    """Streams one model once; afterwards ``text``, ``usage`` and ``model`` describe what happened."""

    def __init__(self, endpoint: Endpoint, bot: Bot, messages: list[dict]):
        self.endpoint = endpoint
        self.bot = bot
        self.messages = messages
        self.text: list[str] = []
        self.model = endpoint.model
        self.usage: Usage | None = None

    def final_usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        prompt = sum(estimate_tokens(str(m["content"])) for m in self.messages)
        return Usage(prompt_tokens=prompt, completion_tokens=estimate_tokens("".join(self.text)))

    async def stream(self) -> AsyncIterator[TextDelta]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.LLM_TOTAL_TIMEOUT
        first_token_by = loop.time() + settings.LLM_FIRST_TOKEN_TIMEOUT

        def remaining() -> float:
            limit = deadline if self.text else min(deadline, first_token_by)
            left = limit - loop.time()
            if left <= 0:
                raise AttemptFailed(self._timeout_reason(), retryable=False)
            return left

        extra: dict[str, Any] = {}
        if self.endpoint.stream_usage:
            extra["stream_options"] = {"include_usage": True}
        client = get_client(self.endpoint)
        try:
            stream = await asyncio.wait_for(
                client.chat.completions.create(
                    model=self.endpoint.model,
                    messages=self.messages,  # type: ignore[arg-type]
                    temperature=self.bot.temperature,
                    max_tokens=self.bot.max_output_tokens,
                    stream=True,
                    **extra,
                ),
                timeout=remaining(),
            )
        except TimeoutError:
            raise AttemptFailed(self._timeout_reason(), retryable=False) from None
        except Exception as exc:
            raise describe_error(exc, self.endpoint) from None
        try:
            chunks = stream.__aiter__()
            while True:
                try:
                    chunk = await asyncio.wait_for(chunks.__anext__(), timeout=remaining())
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise AttemptFailed(self._timeout_reason(), retryable=False) from None
                except AttemptFailed:
                    raise
                except Exception as exc:
                    raise describe_error(exc, self.endpoint) from None
                if chunk.model:
                    self.model = chunk.model
                if chunk.usage is not None:
                    self.usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        self.text.append(choice.delta.content)
                        yield TextDelta(choice.delta.content)
        finally:
            # Closing an unfinished response drops the connection: this is what stops the upstream
            # generation when the visitor leaves or a limit is hit.
            await stream.close()

    def _timeout_reason(self) -> str:
        if self.text:
            return (
                f"{self.endpoint.provider} exceeded the total answer limit of {settings.LLM_TOTAL_TIMEOUT:g}s"
            )
        return f"{self.endpoint.provider} sent no first token within {settings.LLM_FIRST_TOKEN_TIMEOUT:g}s"


# --- the public entry point -----------------------------------------------------------------------
async def stream_chat(
    *, bot: Bot, messages: list[dict], passages: Sequence[Passage]
) -> AsyncIterator[LLMEvent]:
    """Stream an answer: ``TextDelta`` events, then exactly one ``Completed``.

    Raises ``LLMUnavailable`` only if even the offline provider cannot answer.
    """
    chat_messages = build_messages(bot=bot, messages=messages, passages=passages)
    endpoints = endpoints_for(bot)
    for position, endpoint in enumerate(endpoints):
        for attempt_number in range(settings.LLM_MAX_RETRIES + 1):
            attempt = Attempt(endpoint, bot, chat_messages)
            try:
                async for delta in attempt.stream():
                    yield delta
            except AttemptFailed as failure:
                logger.warning(
                    "LLM attempt failed bot=%s provider=%s model=%s attempt=%d: %s",
                    bot.public_id,
                    endpoint.provider,
                    endpoint.model,
                    attempt_number + 1,
                    failure.reason,
                )
                if attempt.text:
                    # Text already reached the visitor and cannot be taken back: end the answer here.
                    yield _completed(attempt, fallback=position > 0, incomplete=True)
                    return
                if not failure.retryable or attempt_number == settings.LLM_MAX_RETRIES:
                    break
                delay = backoff_delay(attempt_number, failure.retry_after)
                if delay > settings.LLM_RETRY_MAX_WAIT:
                    logger.warning("Retry-After %.1fs exceeds LLM_RETRY_MAX_WAIT; not waiting", delay)
                    break
                await asyncio.sleep(delay)
                continue
            yield _completed(attempt, fallback=position > 0)
            return
    question = last_user_message(messages)
    try:
        async for event in offline_stream(
            bot=bot, question=question, passages=passages, after_failure=bool(endpoints)
        ):
            yield event
    except Exception:
        logger.exception("Offline provider failed for bot=%s", bot.public_id)
        raise LLMUnavailable((bot.fallback_reply or "").strip() or LLMUnavailable().user_message) from None


def _completed(attempt: Attempt, *, fallback: bool, incomplete: bool = False) -> Completed:
    usage = attempt.final_usage()
    return Completed(
        model=attempt.model,
        provider=attempt.endpoint.provider,
        usage=usage,
        cost_usd=estimate_cost(attempt.model, usage),
        offline=False,
        incomplete=incomplete,
        fallback=fallback,
    )


# --- connection check for the admin ---------------------------------------------------------------
@dataclass(frozen=True)
class ConnectionReport:
    ok: bool
    provider: str
    model: str
    message: str
    latency_ms: int | None = None


async def check_endpoint(endpoint: Endpoint) -> ConnectionReport:
    """Ask the model for a one-word reply and report what happened in words an admin understands."""
    started = time.monotonic()
    try:
        response = await asyncio.wait_for(
            get_client(endpoint).chat.completions.create(
                model=endpoint.model,
                messages=[{"role": "user", "content": "Reply with the single word: OK"}],
                max_tokens=16,
                stream=False,
            ),
            timeout=settings.LLM_FIRST_TOKEN_TIMEOUT,
        )
    except TimeoutError:
        return ConnectionReport(
            False,
            endpoint.provider,
            endpoint.model,
            f"No answer within {settings.LLM_FIRST_TOKEN_TIMEOUT:g}s.",
        )
    except Exception as exc:
        return ConnectionReport(
            False, endpoint.provider, endpoint.model, describe_error(exc, endpoint).reason
        )
    latency = int((time.monotonic() - started) * 1000)
    reply = ""
    if response.choices and response.choices[0].message:
        reply = (response.choices[0].message.content or "").strip()
    reply = redact(reply[:200], [endpoint.api_key])
    return ConnectionReport(
        True,
        endpoint.provider,
        response.model or endpoint.model,
        f"Connected. The model replied: {reply!r}",
        latency,
    )
