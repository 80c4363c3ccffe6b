"""One place where errors become JSON: ``{"error": {"code", "message"}, "detail": message}``.

Field validation errors keep DRF's ``{"field": ["message"]}`` shape. ``ApplicationError`` (domain rules,
``accounts.exceptions``) becomes its ``status_code`` with its message.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.exceptions import ApplicationError


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(
            {"error": {"code": exc.code, "message": exc.message}, "detail": exc.message},
            status=exc.status_code,
        )
    response = drf_exception_handler(exc, context)
    if response is None or isinstance(exc, exceptions.ValidationError):
        return response
    if isinstance(exc, exceptions.APIException):
        detail = exc.detail
        message = str(detail.get("detail", detail)) if isinstance(detail, dict) else str(detail)
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = {"error": {"code": code, "message": message}, "detail": message}
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response
