from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission


class ApiKeyScope(BasePermission):
    """Read-only API keys may only read (GET, HEAD, OPTIONS). Requests without an API key pass through."""

    message = "This API key is read-only."

    def has_permission(self, request: Any, view: Any) -> bool:
        api_key = request.auth
        if not getattr(api_key, "is_api_key", False):
            return True
        return request.method in SAFE_METHODS or not api_key.read_only
