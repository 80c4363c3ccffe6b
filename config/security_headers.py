"""Content-Security-Policy and Permissions-Policy for Parlor's own pages (admin, sign-in, API docs).

Django has no CSP of its own. A response that already carries a Content-Security-Policy keeps it: the
widget's iframe and the chat page send a stricter, per-bot policy (see ``chatbots.widget_views``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

CSP = "Content-Security-Policy"
CSP_REPORT_ONLY = "Content-Security-Policy-Report-Only"


def add_security_headers(response: HttpResponse) -> HttpResponse:
    policy = settings.CONTENT_SECURITY_POLICY
    if policy and CSP not in response and CSP_REPORT_ONLY not in response:
        response[CSP_REPORT_ONLY if settings.CONTENT_SECURITY_POLICY_REPORT_ONLY else CSP] = policy
    if settings.PERMISSIONS_POLICY and "Permissions-Policy" not in response:
        response["Permissions-Policy"] = settings.PERMISSIONS_POLICY
    return response


class SecurityHeadersMiddleware:
    # Both sync and async, so the ASGI stack needs no thread hop for it.
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self._acall(request)
        return add_security_headers(self.get_response(request))  # type: ignore[arg-type]

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return add_security_headers(await self.get_response(request))  # type: ignore[misc]
