"""Content-Security-Policy and Permissions-Policy for Parlor's own pages (admin, sign-in, API docs).

Django has no CSP of its own. A response that already carries a Content-Security-Policy keeps it: the
widget's iframe and the chat page send a stricter, per-bot policy (see ``chatbots.widget_views``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.deprecation import MiddlewareMixin

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

CSP = "Content-Security-Policy"
CSP_REPORT_ONLY = "Content-Security-Policy-Report-Only"


class SecurityHeadersMiddleware(MiddlewareMixin):  # MiddlewareMixin: works in sync and async stacks
    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and CSP not in response and CSP_REPORT_ONLY not in response:
            response[CSP_REPORT_ONLY if settings.CONTENT_SECURITY_POLICY_REPORT_ONLY else CSP] = policy
        if settings.PERMISSIONS_POLICY and "Permissions-Policy" not in response:
            response["Permissions-Policy"] = settings.PERMISSIONS_POLICY
        return response
