"""Reads of bots and conversations for the chat surfaces (widget, chat page, chat APIs) and the admin."""

from __future__ import annotations

import time
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import QuerySet

from chatbots.exceptions import BotNotFound, ConversationNotFound
from chatbots.llm.events import Turn
from chatbots.models import Bot, Conversation, Message, MessageStatus

BOT_CACHE_SECONDS = 5.0  # a change in the admin reaches open widgets within this many seconds
_bot_cache: dict[str, tuple[float, Bot]] = {}
HISTORY_STATUSES = (MessageStatus.COMPLETE, MessageStatus.INCOMPLETE)


# --- bots ------------------------------------------------------------------------------------------


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


def bot_source_ids(*, bot: Bot) -> list[int]:
    """The ids of the knowledge sources the bot answers from. Plain SQL over the bot's own relation: it is
    on every message's critical path, and compiling the ORM query cost more than running it
    (bench/chat_load.py)."""
    table = Bot.sources.through._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT source_id FROM {table} WHERE bot_id = %s ORDER BY source_id", [bot.pk])  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


# --- conversations ---------------------------------------------------------------------------------


def conversation_get_for_visitor(
    *, bot: Bot, conversation_id: str | uuid.UUID, visitor_id: str = ""
) -> Conversation:
    """The bot's conversation with that id; another bot's (or tenant's) id is simply not found.

    A widget conversation also has to match the visitor it was started by, when both are known."""
    try:
        conversation = Conversation.objects.get(pk=conversation_id, bot=bot)
    except (Conversation.DoesNotExist, ValueError, TypeError, ValidationError):  # not even a UUID
        raise ConversationNotFound() from None
    if visitor_id and conversation.visitor_id and conversation.visitor_id != visitor_id:
        raise ConversationNotFound()
    return conversation


def conversation_get_for_api_key(*, api_key: Any, conversation_id: Any) -> Conversation:
    """A conversation of the key's organization and of a bot the key may use; anything else is 404."""
    try:
        conversation = Conversation.objects.select_related("bot").get(
            pk=conversation_id, organization_id=api_key.organization_id
        )
    except (Conversation.DoesNotExist, ValueError, TypeError, ValidationError):  # not even a UUID
        raise ConversationNotFound() from None
    if not api_key.allows_bot(conversation.bot):
        raise ConversationNotFound()
    return conversation


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    """The whole conversation, oldest first (refused messages included)."""
    return conversation.messages.order_by("created_at", "id")


def conversation_recent_turns(
    *, conversation_id: uuid.UUID, before_message_id: int, turns: int
) -> list[Turn]:
    """The last ``turns`` exchanges before a message, oldest first, for the prompt."""
    if turns <= 0:
        return []
    rows = list(
        Message.objects.filter(
            conversation_id=conversation_id, pk__lt=before_message_id, status__in=HISTORY_STATUSES
        )
        .exclude(text="")
        .order_by("-created_at", "-id")
        .values("role", "text")[: turns * 2]
    )
    return [Turn(role=row["role"], content=row["text"]) for row in reversed(rows)]
