"""Reads of bots and conversations for the public chat surfaces (widget, chat page, chat APIs)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings

from chatbots.models import Bot
from chatbots.pipeline.errors import BotNotFound

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


def _origin(url: str) -> str:
    parts = urlsplit(url.strip().rstrip("/"))
    if not parts.scheme or not parts.netloc:
        return url.strip().lower().rstrip("/")
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(*, bot: Bot, origin: str | None, host: str | None = None) -> bool:
    """Parlor's own pages (the widget iframe, the chat page) and the bot's allowed origins may connect.

    A bot with no allowed origins is open to every site, so a new bot works at once; listing origins
    locks it down.
    """
    if not origin:
        return True  # not a browser (API clients, server-side integrations)
    origin = _origin(origin)
    own = {_origin(settings.SITE_URL)}
    if host:
        own |= {f"http://{host}".lower(), f"https://{host}".lower()}
    if origin in own:
        return True
    allowed = [_origin(o) for o in (bot.allowed_origins or [])]
    return not allowed or origin in allowed or "*" in allowed


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
