"""The answer cache's step in the chat pipeline (keys and invalidation: chatbots.answer_cache).

Only a conversation's first question is looked up or stored: a later one depends on the conversation.
The FAQ still comes first: an answer is stored only when no FAQ answered it, and adding an FAQ pair bumps the
knowledge version, so a question an FAQ now answers never finds an older cached answer. A Redis failure is a
miss, never a failed answer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

from chatbots.answer_cache import CachedAnswer, entry_key, version_keys
from chatbots.llm.events import Generation
from chatbots.models import Bot, MessageStatus
from chatbots.pipeline.events import ChatRequest
from chatbots.pipeline.ratelimit import RedisUnavailable, redis_call
from chatbots.services import AnswerRecord

logger = logging.getLogger(__name__)
CHUNK_CHARS = 24  # streamed in small pieces like an FAQ answer, so every transport behaves the same
CACHED_PROVIDER = "cache"


@dataclass
class CacheLookup:
    key: str
    hit: CachedAnswer | None


def cacheable_request(request: ChatRequest) -> bool:
    """A first question (no conversation yet, no history sent) to a bot that caches answers, asked with the
    bot's own settings: an API client's temperature, token limit, stop words or system message make an
    answer of its own."""
    return (
        request.bot.answer_cache_enabled
        and request.conversation_id is None
        and not request.history
        and (request.generation is None or request.generation == Generation())
    )


async def cache_lookup(*, bot: Bot, text: str) -> CacheLookup | None:
    """The cached answer to ``text`` (``hit``), and the key to store a new one under; None if Redis failed."""
    try:
        versions = await redis_call(lambda client: client.mget(version_keys(bot)))
        key = entry_key(bot=bot, question=text, versions=versions)
        raw = await redis_call(lambda client: client.get(key))
    except RedisUnavailable:
        logger.warning("answer cache unavailable; answering without it")
        return None
    return CacheLookup(key=key, hit=CachedAnswer.loads(raw) if raw else None)


async def cached_answer(entry: CachedAnswer, record: AnswerRecord) -> AsyncIterator[str]:
    """Stream a cached answer; the message is marked as such and costs nothing."""
    record.answered_from_cache = True
    record.provider = CACHED_PROVIDER
    record.model, record.offline, record.sources = entry.model, entry.offline, entry.sources
    record.cost_usd = Decimal(0)
    for start in range(0, len(entry.text), CHUNK_CHARS):
        yield entry.text[start : start + CHUNK_CHARS]


def worth_storing(record: AnswerRecord) -> bool:
    """A complete answer of the model (not an FAQ, a fixed reply, an apology or an earlier cache hit)."""
    return (
        record.status == MessageStatus.COMPLETE
        and not record.error_code
        and not record.answered_from_faq
        and not record.answered_from_cache
        and record.provider not in ("", "fallback_reply")
        and bool(record.text.strip())
    )


async def cache_store(*, lookup: CacheLookup, bot: Bot, record: AnswerRecord) -> None:
    entry = CachedAnswer(
        text=record.text, model=record.model, offline=record.offline, sources=record.sources,
        prompt_tokens=record.prompt_tokens, completion_tokens=record.completion_tokens,
        cost_usd=str(record.cost_usd) if record.cost_usd is not None else None,
    )  # fmt: skip
    try:
        await redis_call(
            lambda client: client.set(lookup.key, entry.dumps(), ex=bot.answer_cache_ttl_seconds)
        )
    except RedisUnavailable:
        logger.warning("answer cache unavailable; answer not cached")
