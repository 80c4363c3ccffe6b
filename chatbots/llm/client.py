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
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from django.conf import settings

from chatbots.llm.endpoints import Endpoint, endpoints_for, get_client
from chatbots.llm.errors import AttemptFailed, backoff_delay, describe_error, redact
from chatbots.llm.events import (
    Completed,
    Generation,
    Interrupted,
    LLMEvent,
    LLMUnavailable,
    Passage,
    TextDelta,
    Usage,
)
from chatbots.llm.offline import OFFLINE_MODEL, OFFLINE_PROVIDER, offline_stream
from chatbots.llm.presets import sampling_params
from chatbots.llm.pricing import estimate_cost
from chatbots.llm.prompt import build_messages, last_user_message

if TYPE_CHECKING:
    from chatbots.models import Bot

logger = logging.getLogger(__name__)


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class Attempt:
    """Streams one model once; afterwards ``text``, ``usage`` and ``model`` describe what happened."""

    def __init__(
        self, endpoint: Endpoint, bot: Bot, messages: list[dict], generation: Generation | None = None
    ):
        self.endpoint = endpoint
        self.bot = bot
        self.messages = messages
        self.generation = generation or Generation()
        self.text: list[str] = []
        self.model = endpoint.model
        self.usage: Usage | None = None
        self.finish_reason: str | None = None

    def final_usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        prompt = sum(estimate_tokens(str(m["content"])) for m in self.messages)
        return Usage(prompt_tokens=prompt, completion_tokens=estimate_tokens("".join(self.text)))

    async def stream(self) -> AsyncIterator[TextDelta]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.LLM_TOTAL_TIMEOUT
        first_token_by = min(deadline, loop.time() + settings.LLM_FIRST_TOKEN_TIMEOUT)

        extra: dict[str, Any] = {}
        generation = self.generation
        if generation.stop:
            extra["stop"] = list(generation.stop)
        if self.endpoint.stream_usage:
            extra["stream_options"] = {"include_usage": True}
        client = get_client(self.endpoint)
        # The SDK makes the request (auth, headers, status errors); the stream's lines are parsed here
        # instead of becoming one pydantic object per token, which cost ~1 ms of CPU per token
        # (bench/chat_load.py) and capped how many answers one process can stream at once.
        # The body goes in ``extra_body``, which the SDK sends as given (it takes precedence over the named
        # parameters): the SDK's type-driven transform of ``messages`` cost ~2 ms of event-loop CPU per
        # answer, the largest single item in a profile of bench/chat_load.py.
        body = {
            "messages": self.messages,
            **sampling_params(
                provider=self.endpoint.provider,
                model=self.endpoint.model,
                temperature=self.bot.temperature
                if generation.temperature is None
                else generation.temperature,
                # A client may ask for less than the bot allows, never for more.
                max_tokens=min(
                    generation.max_tokens or self.bot.max_output_tokens, self.bot.max_output_tokens
                ),
            ),
            **extra,
        }
        request = client.chat.completions.with_streaming_response.create(
            model=self.endpoint.model, messages=[], stream=True, extra_body=body
        )
        if first_token_by <= loop.time():
            raise AttemptFailed(self._timeout_reason(), retryable=False)
        try:
            async with asyncio.timeout_at(first_token_by):
                response = await request.__aenter__()
        except TimeoutError:
            raise AttemptFailed(self._timeout_reason(), retryable=False) from None
        except Exception as exc:
            raise describe_error(exc, self.endpoint) from None
        # A reader task parses the body as it arrives into ``arrived``; this generator relays what arrived
        # since its last turn as one delta. Tokens that come faster than this process relays them (a busy
        # process, a provider sending in bursts) so leave as one frame instead of one each, while an
        # answer arriving token by token still streams token by token: nothing is ever held back waiting
        # for more.
        arrived = _Arrivals()
        reader = asyncio.ensure_future(self._read(response, arrived, first_token_by, deadline))
        try:
            while True:
                await arrived.ready.wait()
                pieces, failure, finished = arrived.take()
                if pieces:
                    text = "".join(pieces)
                    self.text.append(text)
                    yield TextDelta(text)
                if failure is not None:
                    raise failure
                if finished:
                    break
        finally:
            # Closing an unfinished response drops the connection: this is what stops the upstream
            # generation when the visitor leaves or a limit is hit.
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            await request.__aexit__(None, None, None)

    async def _read(self, response: Any, arrived: _Arrivals, first_token_by: float, deadline: float) -> None:
        """Parse the streamed body into ``arrived`` until ``[DONE]`` or its end. Two limits, each one timer
        for the whole read (not one per token): the first token by ``first_token_by``, all by ``deadline``."""
        try:
            events = ServerSentEvents()
            reads = response.iter_bytes().__aiter__()
            try:
                async with asyncio.timeout_at(first_token_by) as limit:
                    while True:
                        try:
                            received = await reads.__anext__()
                        except StopAsyncIteration:
                            break
                        except Exception as exc:
                            # Reading the body fails only at the transport (the SDK's HTTP client raises its
                            # own exception types here): a stream that broke off, retryable like a dropped
                            # connection.
                            reason = (
                                f"the stream from {self.endpoint.provider} broke off ({type(exc).__name__})"
                            )
                            raise AttemptFailed(
                                redact(reason, [self.endpoint.api_key]), retryable=True
                            ) from None
                        for data in events.feed(received):
                            self._read_chunk(data, arrived.pieces)
                        if arrived.pieces:
                            if not arrived.any_text:
                                arrived.any_text = True
                                limit.reschedule(deadline)
                            arrived.ready.set()
                        if events.done:
                            break
            except TimeoutError:
                raise AttemptFailed(self._timeout_reason(arrived.any_text), retryable=False) from None
            if events.done:
                await _read_to_end(reads)
        except Exception as failure:  # AttemptFailed, or a bug: raised where the answer is relayed
            arrived.failure = failure
        finally:
            arrived.finished = True
            arrived.ready.set()

    def _read_chunk(self, data: bytes, pieces: list[str]) -> None:
        """One ``chat.completion.chunk`` (or an in-stream error): the text pieces it carries go to
        ``pieces``."""
        try:
            chunk = orjson.loads(data)
        except ValueError:
            raise AttemptFailed(f"{self.endpoint.provider} sent a malformed stream", retryable=True) from None
        if not isinstance(chunk, dict):
            return
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise AttemptFailed(
                redact(f"{self.endpoint.provider} error: {message}", [self.endpoint.api_key]), retryable=True
            )
        if chunk.get("model"):
            self.model = chunk["model"]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            content = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
            if isinstance(content, str) and content:
                pieces.append(content)

    def _timeout_reason(self, any_text: bool = False) -> str:
        if any_text or self.text:
            return (
                f"{self.endpoint.provider} exceeded the total answer limit of {settings.LLM_TOTAL_TIMEOUT:g}s"
            )
        return f"{self.endpoint.provider} sent no first token within {settings.LLM_FIRST_TOKEN_TIMEOUT:g}s"


class _Arrivals:
    """What a reader task parsed and the relaying generator has not taken yet."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.ready = asyncio.Event()
        self.failure: Exception | None = None
        self.finished = False
        self.any_text = False

    def take(self) -> tuple[list[str], Exception | None, bool]:
        pieces, self.pieces = self.pieces, []
        self.ready.clear()
        return pieces, self.failure, self.finished


class ServerSentEvents:
    """The ``data:`` fields of a server-sent event stream, fed the body's bytes as they arrive (a read may
    end mid-line: the rest waits for the next one). ``done`` once the OpenAI-style ``[DONE]`` arrived."""

    def __init__(self) -> None:
        self.pending = b""
        self.done = False

    def feed(self, received: bytes) -> list[bytes]:
        if self.done:
            return []
        lines = (self.pending + received).split(b"\n") if self.pending else received.split(b"\n")
        self.pending = lines.pop()  # b"" when the read ended with a complete line
        found = []
        for line in lines:
            if not line.startswith(b"data:"):
                continue  # blank separators, comments, "event:" lines
            data = line[5:].strip()
            if data == b"[DONE]":
                self.done = True
                break
            found.append(data)
        return found


async def _read_to_end(lines: AsyncIterator[bytes]) -> None:
    """Read what follows ``[DONE]`` (the end of the chunked body): only a response read to its end returns
    its connection to the pool, so the next answer skips the TCP and TLS handshakes. The end follows
    ``[DONE]`` at once; a server that keeps the stream open past it just loses its connection."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(0.25):
            async for _ in lines:
                pass


# --- the public entry point -----------------------------------------------------------------------
async def stream_chat(
    *,
    bot: Bot,
    messages: list[dict],
    passages: Sequence[Passage],
    generation: Generation | None = None,
    interrupted: Interrupted | None = None,
    other_knowledge_language: str = "",
) -> AsyncIterator[LLMEvent]:
    """Stream an answer: ``TextDelta`` events, then exactly one ``Completed``.

    ``generation``: an API client's temperature, output limit, stop sequences and instructions for this
    answer (the offline provider quotes passages and ignores them). ``interrupted``: filled in when the
    caller closes or cancels the stream before ``Completed``. ``other_knowledge_language``: the knowledge's
    language when the visitor writes in another one (the prompt then says to answer in the visitor's). Raises
    ``LLMUnavailable`` only if even the offline provider cannot answer.
    """
    instructions = generation.instructions if generation else ""
    chat_messages = build_messages(
        bot=bot,
        messages=messages,
        passages=passages,
        instructions=instructions,
        other_knowledge_language=other_knowledge_language,
    )
    endpoints = endpoints_for(bot)
    for position, endpoint in enumerate(endpoints):
        retries = 0
        while True:
            attempt = Attempt(endpoint, bot, chat_messages, generation)
            deltas = attempt.stream()
            try:
                async for delta in deltas:
                    yield delta
            except (GeneratorExit, asyncio.CancelledError):
                await deltas.aclose()  # drops the provider's connection now: the generation stops
                if interrupted is not None:
                    interrupted.completed = _completed(attempt, fallback=position > 0, incomplete=True)
                raise
            except AttemptFailed as failure:
                logger.warning(
                    "LLM attempt failed bot=%s provider=%s model=%s retry=%d: %s",
                    bot.public_id,
                    endpoint.provider,
                    endpoint.model,
                    retries,
                    failure.reason,
                )
                if attempt.text:
                    # Text already reached the visitor and cannot be taken back: end the answer here.
                    yield _completed(attempt, fallback=position > 0, incomplete=True)
                    return
                if failure.status == 400 and endpoint.stream_usage and "stream_options" in failure.reason:
                    # Some OpenAI-compatible servers refuse stream_options: ask again without it (usage is
                    # then estimated). Not a retry: nothing failed on the provider's side.
                    endpoint = replace(endpoint, stream_usage=False)
                    continue
                if not failure.retryable or retries >= settings.LLM_MAX_RETRIES:
                    break
                delay = backoff_delay(retries, failure.retry_after)
                if delay > settings.LLM_RETRY_MAX_WAIT:
                    logger.warning("Retry-After %.1fs exceeds LLM_RETRY_MAX_WAIT; not waiting", delay)
                    break
                retries += 1
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
    except (GeneratorExit, asyncio.CancelledError):
        if interrupted is not None:
            interrupted.completed = Completed(
                model=OFFLINE_MODEL, provider=OFFLINE_PROVIDER, usage=Usage(0, 0), cost_usd=Decimal(0),
                offline=True, incomplete=True, fallback=bool(endpoints),
            )  # fmt: skip
        raise
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
        hit_token_limit=not incomplete and attempt.finish_reason == "length",
    )
