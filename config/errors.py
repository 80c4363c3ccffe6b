"""One error model for every surface: a domain error carries a stable code, a message safe to show to the
person who caused it, and an HTTP status.

Services raise ``ApplicationError`` subclasses (``accounts.exceptions``, ``knowledge.exceptions``,
``chatbots.exceptions``); the transports turn them into their own shape in one place each: DRF views
through ``config.api_errors.api_exception_handler`` (settings ``EXCEPTION_HANDLER``), plain Django views through
``error_response``, the chat socket through ``error_frame``. This module is plumbing below the apps and
imports none of them.
"""

from __future__ import annotations

from typing import Any, TypedDict

from django.http import JsonResponse


class ApplicationError(Exception):
    """A business rule said no. ``message`` is safe to show; ``code`` is stable for clients."""

    code = "invalid"
    http_status = 400
    default_message = "The request could not be completed."

    def __init__(
        self, message: str | None = None, *, code: str | None = None, retry_after: int | None = None
    ) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
        if code is not None:
            self.code = code
        self.retry_after = retry_after


class PermissionDenied(ApplicationError):
    code = "permission_denied"
    http_status = 403
    default_message = "You are not allowed to do this."


class NotFound(ApplicationError):
    code = "not_found"
    http_status = 404
    default_message = "Not found."


class ErrorBody(TypedDict, total=False):
    code: str
    message: str
    retry_after: int


def error_body(exc: ApplicationError) -> ErrorBody:
    body: ErrorBody = {"code": exc.code, "message": exc.message}
    if exc.retry_after is not None:
        body["retry_after"] = exc.retry_after
    return body


def error_response(exc: ApplicationError) -> JsonResponse:
    """The JSON response of a plain (non-DRF) view: ``{"error": {"code", "message"}}``."""
    response = JsonResponse({"error": error_body(exc)}, status=exc.http_status)
    if exc.retry_after is not None:
        response["Retry-After"] = str(exc.retry_after)
    return response


def error_frame(exc: ApplicationError) -> dict[str, Any]:
    """The WebSocket frame of an error: ``{"type": "error", "code", "message", "retry_after"?}``."""
    return {"type": "error", **error_body(exc)}
