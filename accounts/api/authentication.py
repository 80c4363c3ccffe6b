"""API keys for the REST API: ``Authorization: Bearer prl_xxxxxxxx_<secret>``.

``authenticate`` returns ``(ApiKeyPrincipal, ApiKey)``: ``request.auth`` is the ``ApiKey`` (its
``organization`` and ``read_only`` scope the request; chatbots decides which bots it may use) and
``request.user`` is a principal that is authenticated but no person, so user-based permissions never apply
to a key.
Works with DRF requests and with plain Django ``HttpRequest`` objects (the async chat endpoints).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.exceptions import ApiOriginNotAllowed
from accounts.models import ApiKey
from accounts.selectors import api_key_get_by_secret, api_origin_allowed
from accounts.services import api_key_record_use

KEYWORD = b"bearer"


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """Stands in for ``request.user`` on API-key requests."""

    api_key: ApiKey
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    pk: None = None
    id: None = None

    def __str__(self) -> str:
        return f"API key {self.api_key.prefix}"

    def has_perm(self, *args: Any, **kwargs: Any) -> bool:
        return False


class ApiKeyAuthentication(BaseAuthentication):
    """Accepts active API keys; unknown, revoked or expired keys fail with 401 and a clear message."""

    def authenticate(self, request: Any) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD:
            return None  # not ours: another authenticator (the session) may apply
        if len(header) != 2:
            raise AuthenticationFailed(
                "Malformed Authorization header; use 'Bearer <API key>'.", code="invalid_api_key"
            )
        try:
            secret = header[1].decode()
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid API key.", code="invalid_api_key") from None
        api_key = api_key_get_by_secret(secret=secret)
        if api_key is None:
            raise AuthenticationFailed("Invalid API key.", code="invalid_api_key")
        if api_key.revoked_at is not None:
            raise AuthenticationFailed("This API key has been revoked.", code="api_key_revoked")
        if api_key.is_expired:
            raise AuthenticationFailed("This API key has expired.", code="api_key_expired")
        origin = request.headers.get("Origin")
        if origin and not api_origin_allowed(
            organization=api_key.organization,
            origin=origin,
            own_origin=f"{request.scheme}://{request.get_host()}",
        ):
            # A key copied into another website's page (CORS): refused even where the browser would not stop it.
            raise ApiOriginNotAllowed()
        api_key_record_use(api_key=api_key)
        return ApiKeyPrincipal(api_key=api_key), api_key

    def authenticate_header(self, request: Any) -> str:
        # Makes DRF answer 401 (not 403) when authentication is missing or fails.
        return 'Bearer realm="api"'
