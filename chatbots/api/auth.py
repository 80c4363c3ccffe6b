"""API-key access to bots for the async chat endpoints (DRF's own views use the DRF class directly)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from rest_framework.exceptions import AuthenticationFailed

from accounts.api.authentication import ApiKeyAuthentication
from chatbots.exceptions import BotNotFound, ForbiddenByApiKey, NotAuthenticated
from chatbots.models import Bot
from chatbots.selectors import api_key_may_use_bot, bot_get_public, bots_for_api_key


def _authenticate(request: HttpRequest) -> Any:
    try:
        result = ApiKeyAuthentication().authenticate(request)
    except AuthenticationFailed as exc:
        raise NotAuthenticated(str(exc.detail)) from None
    if result is None:
        raise NotAuthenticated()
    return result[1]


def api_key_bot(*, request: HttpRequest, public_id: str, write: bool) -> tuple[Any, Bot]:
    """The API key of the request and the bot it names; a bot of another organization is not found."""
    api_key = _authenticate(request)
    bot = bot_get_public(public_id=public_id)
    if bot.organization_id != api_key.organization_id:
        raise BotNotFound()
    if not api_key_may_use_bot(api_key=api_key, bot=bot):
        raise ForbiddenByApiKey()
    if write and api_key.read_only:
        raise ForbiddenByApiKey("This API key is read-only; it cannot send messages or feedback.")
    return api_key, bot


api_key_bot_async = sync_to_async(api_key_bot)


def api_key_bots(*, request: HttpRequest) -> tuple[Any, list[Bot]]:
    """The request's API key and the bots it may use (OpenAI's model list), by name."""
    api_key = _authenticate(request)
    return api_key, list(
        bots_for_api_key(api_key=api_key).select_related("organization").order_by("name", "pk")
    )


api_key_bots_async = sync_to_async(api_key_bots)
