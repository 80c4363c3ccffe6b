"""Reads of bots and conversations for the public chat surfaces (widget, chat page, chat APIs)."""

from __future__ import annotations

import time
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import Exists, Q, QuerySet

from accounts.models import ApiKey
from chatbots.models import ApiKeyBotLimit, Bot, Conversation
from chatbots.pipeline.errors import BotNotFound, ConversationNotFound

BOT_CACHE_SECONDS = 5.0  # a change in the admin reaches open widgets within this many seconds
_bot_cache: dict[str, tuple[float, Bot]] = {}


def bot_get_public(*, public_id: str) -> Bot:
    """The bot behind a public id (widget, chat page); unknown ids are BotNotFound."""
    try:
        return Bot.objects.select_related("organization").get(public_id=public_id)
    except Bot.DoesNotExist:
        raise BotNotFound() from None


async def bot_get_public_cached(*, public_id: str) -> Bot:
    """Per-process cache of bot_get_public: chat traffic does not hit the database for the bot row."""
    now = time.monotonic()
    hit = _bot_cache.get(public_id)
    if hit and now - hit[0] < BOT_CACHE_SECONDS:
        return hit[1]
    bot = await sync_to_async(bot_get_public)(public_id=public_id)
    _bot_cache[public_id] = (now, bot)
    return bot


def bot_widget_config(bot: Bot) -> dict[str, Any]:
    """What the widget needs to draw itself; nothing secret."""
    return {
        "public_id": bot.public_id,
        "name": bot.name,
        "status": bot.status,
        "greeting": bot.greeting,
        "suggested_questions": list(bot.suggested_questions or []),
        "title": bot.widget_title or bot.name,
        "primary_color": bot.widget_primary_color,
        "position": bot.widget_position,
        "launcher_text": bot.widget_launcher_text,
        "avatar_url": bot.widget_avatar_url,
        "theme": bot.widget_theme,
        "language": bot.language,
    }


# --- which bots an API key may use: the one place that reads ApiKeyBotLimit -------------------------------
def bots_for_api_key(*, api_key: ApiKey) -> QuerySet[Bot]:
    """The bots ``api_key`` may use: its organization's, narrowed to its limit if it has one (one query)."""
    limit = ApiKeyBotLimit.objects.filter(api_key_id=api_key.pk)
    return Bot.objects.filter(organization_id=api_key.organization_id).filter(
        Q(~Exists(limit)) | Q(pk__in=limit.values("bots"))
    )


def api_key_may_use_bot(*, api_key: ApiKey, bot: Bot) -> bool:
    """Whether ``api_key`` may use ``bot`` (chat, its conversations, the bots API)."""
    return (
        bot.organization_id == api_key.organization_id
        and bots_for_api_key(api_key=api_key).filter(pk=bot.pk).exists()
    )


def api_key_is_bot_limited(*, api_key: ApiKey) -> bool:
    """True for a key limited to certain bots: it may not change what other bots share (knowledge, bots)."""
    return ApiKeyBotLimit.objects.filter(api_key_id=api_key.pk).exists()


def api_key_bot_ids(*, api_keys: list[ApiKey]) -> dict[int, list[int] | None]:
    """Each key's bot ids (``None``: not limited, every bot) for showing keys, in one query."""
    limited: dict[int, list[int]] = {}
    rows = ApiKeyBotLimit.objects.filter(api_key__in=[k.pk for k in api_keys]).values_list(
        "api_key_id", "bots"
    )
    for api_key_id, bot_id in rows:
        limited.setdefault(api_key_id, [])
        if bot_id is not None:
            limited[api_key_id].append(bot_id)
    return {k.pk: sorted(limited[k.pk]) if k.pk in limited else None for k in api_keys}


def sources_for_api_key(*, api_key: ApiKey, sources: QuerySet) -> QuerySet:
    """``sources`` narrowed to the knowledge of the bots ``api_key`` may use: a key limited to certain bots
    sees only their sources, any other key all of its organization's (also those no bot uses yet)."""
    if not api_key_is_bot_limited(api_key=api_key):
        return sources
    return sources.filter(bots__in=bots_for_api_key(api_key=api_key)).distinct()


def bots_by_public_ids(*, organization_id: int, public_ids: list[str]) -> tuple[list[Bot], list[str]]:
    """The organization's bots with these public ids, in the given order, and the ids that matched none."""
    wanted = list(dict.fromkeys(public_ids))
    found = {
        b.public_id: b for b in Bot.objects.filter(organization_id=organization_id, public_id__in=wanted)
    }
    return [found[p] for p in wanted if p in found], [p for p in wanted if p not in found]


def conversation_for_api_key(*, api_key: Any, conversation_id: Any) -> Conversation:
    """A conversation of the key's organization and of a bot the key may use; anything else is 404."""
    try:
        conversation = Conversation.objects.select_related("bot").get(
            pk=conversation_id, organization_id=api_key.organization_id
        )
    except (Conversation.DoesNotExist, ValueError, TypeError):
        raise ConversationNotFound() from None
    if not api_key_may_use_bot(api_key=api_key, bot=conversation.bot):
        raise ConversationNotFound()
    return conversation


def bot_knowledge_sources(bot: Bot) -> tuple[list[int], bool]:
    """The ids of the bot's knowledge sources, and whether any of them holds FAQ pairs (one query: the FAQ
    lookup is skipped for bots without FAQs). Plain SQL: it is on every message's critical path, and
    compiling the ORM query cost more than running it (bench/chat_load.py)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.source_id, EXISTS (SELECT 1 FROM knowledge_faqpair f WHERE f.source_id = t.source_id) "
            "FROM chatbots_bot_sources t WHERE t.bot_id = %s ORDER BY t.source_id",
            [bot.pk],
        )
        rows = cursor.fetchall()
    return [pk for pk, _ in rows], any(has_faq for _, has_faq in rows)
