"""The chat pipeline: one async code path behind the WebSocket, SSE, REST and OpenAI-compatible transports.

Order matters and is part of the contract: validate → refuse early (paused bot, rate limits, busy
conversation) → persist the user's message → FAQ or retrieval → prompt within budget → stream from the
provider → persist the answer (also when the caller goes away mid-stream).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from chatbots.llm import Completed, LLMUnavailable, TextDelta, stream_chat
from chatbots.models import Bot, MessageStatus
from chatbots.pipeline import store
from chatbots.pipeline.blocking import in_thread_pool
from chatbots.pipeline.errors import BotPaused, ChatError, ConversationBusy, InvalidMessage, MessageTooLong
from chatbots.pipeline.ratelimit import (
    acquire_conversation_slot,
    check_rate_limits,
    release_conversation_slot,
)
from knowledge.retrieval import RetrievedChunk, hybrid_search
from knowledge.services import faq_match

FAQ_CHUNK_CHARS = 24  # an FAQ answer is streamed in small pieces so every transport behaves the same


@dataclass
class ChatRequest:
    bot: Bot
    text: str
    channel: str
    visitor_id: str = ""
    conversation_id: str | None = None
    api_key_id: int | None = None
    client_ip: str = ""
    visitor_attributes: dict[str, Any] | None = None
    # The OpenAI-compatible endpoint brings its own history instead of a stored conversation.
    history: list[dict[str, str]] | None = None


@dataclass(frozen=True)
class Accepted:
    conversation_id: uuid.UUID
    user_message_id: int


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Sources:
    sources: list[dict[str, Any]]


@dataclass(frozen=True)
class Finished:
    message_id: int
    conversation_id: uuid.UUID
    text: str
    sources: list[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int
    incomplete: bool
    offline: bool
    error_code: str = ""
    error_message: str = ""


ChatEvent = Accepted | Delta | Sources | Finished


def source_payload(chunk: RetrievedChunk) -> dict[str, Any]:
    snippet = " ".join(chunk.content.split())
    return {
        "source_id": chunk.source_id,
        "title": chunk.source_title,
        "url": chunk.url,
        "page": chunk.page,
        "snippet": snippet[:280] + ("…" if len(snippet) > 280 else ""),
    }


def _dedupe_sources(chunks: list[RetrievedChunk]) -> list[dict[str, Any]]:
    seen: set[tuple[int, int | None]] = set()
    out = []
    for chunk in chunks:
        key = (chunk.source_id, chunk.page)
        if key not in seen:
            seen.add(key)
            out.append(source_payload(chunk))
    return out


def _rate_limits(request: ChatRequest) -> list[tuple[str, str]]:
    bot_id = request.bot.pk
    limits = [(f"bot:{bot_id}", settings.CHAT_RATE_LIMIT_BOT)]
    if request.api_key_id is not None:
        limits.append((f"key:{request.api_key_id}", settings.CHAT_RATE_LIMIT_API_KEY))
    else:
        visitor = request.visitor_id or request.client_ip or "anonymous"
        limits.append((f"visitor:{bot_id}:{visitor}", settings.CHAT_RATE_LIMIT_VISITOR))
    return limits


def validate_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidMessage("Please type a message.")
    text = text.strip()
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise MessageTooLong(
            f"The message is too long (at most {settings.CHAT_MAX_MESSAGE_CHARS} characters)."
        )
    return text


async def answer_message(request: ChatRequest) -> AsyncIterator[ChatEvent]:
    """Answer one message, yielding Accepted, then Delta*, Sources, Finished.

    Raises ChatError before Accepted when the message is refused (the refused message is still stored
    when it could be attributed to a conversation). Closing or cancelling the iteration mid-stream stops
    the provider request and stores the partial answer, marked incomplete.
    """
    started = time.monotonic()
    bot = request.bot
    text = validate_text(request.text)
    if bot.status != "active":
        raise BotPaused()

    refusal: ChatError | None = None
    try:
        await check_rate_limits(_rate_limits(request))
    except ChatError as exc:
        refusal = exc
    user_message = await in_thread_pool(store.user_message_record)(
        bot=bot,
        conversation_id=request.conversation_id,
        channel=request.channel,
        visitor_id=request.visitor_id,
        visitor_attributes=request.visitor_attributes,
        text=text,
        refused_code=refusal.code if refusal else "",
    )
    if refusal:
        raise refusal
    conversation_id = user_message.conversation_id
    slot_key = str(conversation_id)
    if not await acquire_conversation_slot(slot_key, ttl_seconds=int(settings.LLM_TOTAL_TIMEOUT) + 30):
        await in_thread_pool(store.user_message_refuse)(
            message_id=user_message.pk, code=ConversationBusy.code
        )
        raise ConversationBusy()

    record = store.AssistantRecord()
    saved_id: int | None = None
    finished = False
    try:
        yield Accepted(conversation_id=conversation_id, user_message_id=user_message.pk)
        source_ids = await in_thread_pool(lambda: list(bot.sources.values_list("pk", flat=True)))()

        faq = await in_thread_pool(faq_match)(
            organization_id=bot.organization_id, source_ids=source_ids, question=text
        )
        if faq is not None:
            record.answered_from_faq = True
            record.provider = "faq"
            record.sources = [{"source_id": faq.source_id, "title": faq.question, "url": None, "page": None,
                               "snippet": faq.answer[:280]}]  # fmt: skip
            for start in range(0, len(faq.answer), FAQ_CHUNK_CHARS):
                piece = faq.answer[start : start + FAQ_CHUNK_CHARS]
                if record.first_token_ms is None:
                    record.first_token_ms = int((time.monotonic() - started) * 1000)
                record.text += piece
                yield Delta(piece)
        else:
            passages = await in_thread_pool(hybrid_search)(
                organization_id=bot.organization_id,
                source_ids=source_ids,
                query=text,
                top_k=bot.retrieval_top_k,
                min_score=bot.retrieval_min_score,
            )
            record.sources = _dedupe_sources(passages)
            if not passages and bot.answer_style == "strict" and bot.fallback_reply:
                record.provider = "fallback_reply"
                record.first_token_ms = int((time.monotonic() - started) * 1000)
                record.text = bot.fallback_reply
                yield Delta(bot.fallback_reply)
            else:
                history = request.history
                if history is None:
                    history = await in_thread_pool(store.recent_turns)(
                        conversation_id=conversation_id,
                        before_message_id=user_message.pk,
                        turns=bot.history_turns,
                    )
                messages = [*history, {"role": "user", "content": text}]
                try:
                    async for event in stream_chat(bot=bot, messages=messages, passages=passages):
                        if isinstance(event, TextDelta):
                            if record.first_token_ms is None:
                                record.first_token_ms = int((time.monotonic() - started) * 1000)
                            record.text += event.text
                            yield Delta(event.text)
                        elif isinstance(event, Completed):
                            record.model, record.provider, record.offline = (
                                event.model,
                                event.provider,
                                event.offline,
                            )
                            record.prompt_tokens = event.usage.prompt_tokens
                            record.completion_tokens = event.usage.completion_tokens
                            record.cost_usd = event.cost_usd
                            if event.incomplete:
                                record.status = MessageStatus.INCOMPLETE
                                record.error_code = "stream_interrupted"
                except LLMUnavailable as exc:
                    record.status = MessageStatus.INCOMPLETE if record.text else MessageStatus.FAILED
                    record.error_code = "llm_unavailable"
                    record.user_notice = exc.user_message
        finished = True
    finally:
        if not finished and record.status == MessageStatus.COMPLETE:
            # The caller went away (socket closed, task cancelled) before the answer was complete.
            record.status = MessageStatus.INCOMPLETE
            record.error_code = record.error_code or "client_disconnected"
        record.latency_ms = int((time.monotonic() - started) * 1000)
        try:
            saved = await asyncio.shield(
                in_thread_pool(store.assistant_message_save)(
                    conversation_id=conversation_id, organization_id=bot.organization_id, record=record
                )
            )
            saved_id = saved.pk
        finally:
            await asyncio.shield(release_conversation_slot(slot_key))

    if record.sources:
        yield Sources(record.sources)
    yield Finished(
        message_id=saved_id,
        conversation_id=conversation_id,
        text=record.text,
        sources=record.sources or [],
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        incomplete=record.status != MessageStatus.COMPLETE,
        offline=record.offline,
        error_code=record.error_code,
        error_message=record.user_notice,
    )
