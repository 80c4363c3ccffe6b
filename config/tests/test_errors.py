"""One error model: every domain error and Django's own become the same JSON shape with the right status."""

from __future__ import annotations

import json

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions

from accounts.exceptions import InvitationInvalid
from chatbots.exceptions import ChatError, RateLimited
from config.api_errors import api_exception_handler
from config.errors import ApplicationError, error_frame, error_response
from knowledge.exceptions import IngestError


def test_every_apps_errors_share_one_base():
    for error in (InvitationInvalid("x"), RateLimited(), IngestError("bad file")):
        assert isinstance(error, ApplicationError)
        assert error.code and error.message and 400 <= error.http_status < 600
    assert IngestError("bad file").reason == "bad file"


def test_domain_error_becomes_its_status_with_code_and_message():
    response = api_exception_handler(RateLimited(retry_after=7), {})
    assert response.status_code == 429 and response["Retry-After"] == "7"
    assert response.data["error"] == {"code": "rate_limited", "message": RateLimited.default_message,
                                      "retry_after": 7}  # fmt: skip


def test_django_validation_error_is_a_400_with_field_messages():
    response = api_exception_handler(DjangoValidationError({"name": "Too long."}), {})
    assert response.status_code == 400 and response.data == {"name": ["Too long."]}


def test_builtin_and_django_permission_errors_are_403_not_500():
    for error in (PermissionError("Not allowed."), DjangoPermissionDenied("Not allowed.")):
        response = api_exception_handler(error, {})
        assert response.status_code == 403 and response.data["error"]["code"] == "permission_denied"


def test_drf_errors_get_the_same_shape():
    response = api_exception_handler(exceptions.NotFound("No such bot."), {})
    assert response.status_code == 404
    assert response.data == {
        "error": {"code": "not_found", "message": "No such bot."},
        "detail": "No such bot.",
    }


def test_plain_views_and_sockets_use_the_same_body():
    error = ChatError("Nope.", code="custom", retry_after=3)
    response = error_response(error)
    assert response.status_code == 400 and response["Retry-After"] == "3"
    body = json.loads(response.content)["error"]
    assert body == {"code": "custom", "message": "Nope.", "retry_after": 3}
    assert error_frame(error) == {"type": "error", **body}
