"""The answer cache's keys and invalidation: a first question a bot has answered before is answered again
from Redis instead of a model call (the pipeline's step is chatbots.pipeline.cache).

A key holds the organization and bot ids, then a hash of everything the answer was built from: the question
as FAQ matching compares it (case, punctuation and spacing do not count), the bot's answering settings, the
bot's version and its organization's knowledge version (knowledge.versions). Any change to the bot
(``answer_cache_invalidate``) or to a source (``knowledge_changed``) bumps a version, so older entries are
never read again and expire with their TTL. Entries of one bot are unreachable from any other bot, because
the ids are part of the key, not only of the hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import transaction

from chatbots.models import Bot
from knowledge.selectors import SourcePayload, faq_question_key
from knowledge.versions import knowledge_version_key, sync_redis

KEY_PREFIX = "parlor:answer-cache"
# What an answer depends on besides its question and knowledge; the widget's looks and limits do not count.
ANSWER_SETTINGS = (
    "system_prompt", "answer_style", "fallback_reply", "language", "history_turns", "retrieval_top_k",
    "retrieval_min_score", "provider", "base_url", "model", "temperature", "max_output_tokens",
    "fallback_provider", "fallback_base_url", "fallback_model", "api_key_encrypted",
    "fallback_api_key_encrypted", "updated_at",
)  # fmt: skip


def bot_version_key(bot_id: int) -> str:
    return f"{KEY_PREFIX}-version:{bot_id}"


def bot_prefix(*, organization_id: int, bot_id: int) -> str:
    return f"{KEY_PREFIX}:{organization_id}:{bot_id}:"


def version_keys(bot: Bot) -> list[str]:
    """The Redis keys whose values are part of every entry key of ``bot`` (read in one MGET)."""
    return [bot_version_key(bot.pk), knowledge_version_key(bot.organization_id)]


def entry_key(*, bot: Bot, question: str, versions: list[Any]) -> str:
    """The key of ``question``'s cached answer for ``bot`` with these versions (see version_keys)."""
    settings_part = {name: str(getattr(bot, name)) for name in ANSWER_SETTINGS}
    material = json.dumps(
        [faq_question_key(question), settings_part, [str(v) if v is not None else "" for v in versions]],
        sort_keys=True,
    )
    digest = hashlib.sha256(material.encode()).hexdigest()
    return bot_prefix(organization_id=bot.organization_id, bot_id=bot.pk) + digest


@dataclass
class CachedAnswer:
    """An answer as stored in the cache; ``cost_usd`` is what the model call cost (a hit saves it)."""

    text: str
    model: str = ""
    offline: bool = False
    sources: list[SourcePayload] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: str | None = None

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, raw: bytes | str) -> CachedAnswer:
        return cls(**json.loads(raw))


def answer_cache_invalidate(*, bot_id: int) -> None:
    """Make every cached answer of the bot unreachable, once the current transaction commits."""
    transaction.on_commit(lambda: sync_redis().incr(bot_version_key(bot_id)))


def answer_cache_clear(*, organization_id: int, bot_id: int | None = None) -> int:
    """Delete the cached answers of one bot, or of every bot of an organization (deletion, erasure).
    Returns how many were deleted."""
    pattern = f"{KEY_PREFIX}:{organization_id}:{bot_id if bot_id is not None else '*'}:*"
    client = sync_redis()
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=500):
        batch.append(key)
        if len(batch) >= 500:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    return deleted
