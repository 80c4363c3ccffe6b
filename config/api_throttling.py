"""Rate limits of the management API (DRF views), per API key: ``API_RATE_LIMIT`` requests per window.

The chat endpoints count messages with their own limits (``CHAT_RATE_LIMIT_*``, chatbots/pipeline); this
one keeps a script from hammering bots, sources, conversations and exports. Counted in the Redis cache, so
every web process shares one count; a signed-in member is counted per user, anything else per address.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api"

    def get_rate(self) -> str | None:
        # Read per request rather than once at import, so a deployment's setting (and a test's) applies.
        rate = (settings.API_RATE_LIMIT or "").strip()
        return rate if rate not in ("", "0", "off", "none") else None

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if getattr(request.auth, "is_api_key", False):
            ident = f"key:{request.auth.pk}"
        elif getattr(request.user, "is_authenticated", False) and request.user.pk is not None:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return f"parlor:throttle:{self.scope}:{ident}"
