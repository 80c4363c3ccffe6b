"""The webhooks API (``webhooks/api/views.py``) with the one rule that concerns bots: an endpoint receives
the events of every bot, so an API key limited to certain bots may neither read nor change endpoints."""

from __future__ import annotations

from rest_framework.exceptions import PermissionDenied

from accounts.api.scope import request_api_key
from chatbots.api.access import require_unlimited_writer
from chatbots.selectors import api_key_is_bot_limited
from webhooks.api import views as webhook_views


class BotLimitedKeysRefused:
    def check_access(self, *, write: bool) -> None:
        if write:
            require_unlimited_writer(self.request, what=webhook_views.WHAT)  # type: ignore[attr-defined]
            return
        super().check_access(write=write)  # type: ignore[misc]
        api_key = request_api_key(self.request)  # type: ignore[attr-defined]
        if api_key is not None and api_key_is_bot_limited(api_key=api_key):
            raise PermissionDenied(
                "This API key is limited to certain bots; it cannot read webhook endpoints."
            )


class WebhookEndpointListView(BotLimitedKeysRefused, webhook_views.WebhookEndpointListView):
    pass


class WebhookEndpointDetailView(BotLimitedKeysRefused, webhook_views.WebhookEndpointDetailView):
    pass


class WebhookEndpointRotateSecretView(BotLimitedKeysRefused, webhook_views.WebhookEndpointRotateSecretView):
    pass


class WebhookEndpointTestView(BotLimitedKeysRefused, webhook_views.WebhookEndpointTestView):
    pass


class WebhookDeliveryListView(BotLimitedKeysRefused, webhook_views.WebhookDeliveryListView):
    pass


class WebhookRedeliverView(BotLimitedKeysRefused, webhook_views.WebhookRedeliverView):
    pass
