"""CORS for the API with per-organization allowed origins (django-cors-headers; settings ``CORS_*``).

The middleware answers a preflight, which carries no API key, for any origin some organization lists
(``api_origin_listed``); the request itself is then checked against the key's own organization by
``ApiKeyAuthentication``. Credentials (cookies) are never allowed cross-origin: the API key is the
credential.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from accounts.selectors import api_origin_listed


def cors_for_listed_origins(sender: Any, request: Any, **kwargs: Any) -> bool:
    """``corsheaders.signals.check_request_enabled`` receiver: may this origin get CORS headers? (The
    middleware asks for every path: only the API's answer.)"""
    if not re.match(settings.CORS_URLS_REGEX, request.path_info):
        return False
    return api_origin_listed(origin=request.headers.get("Origin", ""))
