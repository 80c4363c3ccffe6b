"""Which bots an API caller may use, for the DRF views (the rule itself is ``chatbots.selectors``).

Session users act for their active organization's bots; an API key for the bots it may use
(``bots_for_api_key``). A key limited to certain bots cannot change what other bots share: bots
themselves, knowledge sources.
"""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from accounts.api.scope import request_api_key, request_organization, require_writer
from chatbots.models import Bot
from chatbots.selectors import api_key_is_bot_limited, bots_for_api_key


def bots_for_request(request: Request) -> QuerySet[Bot]:
    """The bots the caller may see: its organization's, narrowed to an API key's bots."""
    api_key = request_api_key(request)
    if api_key is not None:
        return bots_for_api_key(api_key=api_key)
    return Bot.objects.filter(organization=request_organization(request))


def require_unlimited_writer(request: Request, *, what: str) -> None:
    """``require_writer``, and no API key limited to certain bots (``what`` may serve other bots)."""
    require_writer(request, what=what)
    api_key = request_api_key(request)
    if api_key is not None and api_key_is_bot_limited(api_key=api_key):
        raise PermissionDenied(f"This API key is limited to certain bots; it cannot create or change {what}.")
