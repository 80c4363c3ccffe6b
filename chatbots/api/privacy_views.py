"""Data subject requests over the REST API (API keys): export or erase one visitor's data."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import ApiKeyAuthentication
from accounts.api.inputs import InputSerializer
from chatbots.exceptions import ForbiddenByApiKey
from chatbots.models import DataSubjectRequest, SubjectLookup, SubjectRequestKind
from chatbots.privacy import (
    subject_download_token,
    subject_export_available,
    subject_export_response,
    subject_request_by_token,
    subject_request_create,
    subject_request_get,
)
from chatbots.selectors import api_key_is_bot_limited
from config.errors import ApplicationError


class SubjectRequestInput(InputSerializer):
    kind = serializers.ChoiceField(choices=SubjectRequestKind.choices)
    visitor_id = serializers.CharField(required=False, max_length=64)
    email = serializers.EmailField(required=False)
    conversation_id = serializers.UUIDField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ("visitor_id", "email", "conversation_id") if attrs.get(name)]
        if len(given) != 1:
            raise serializers.ValidationError("Give exactly one of visitor_id, email or conversation_id.")
        return attrs


def subject_request_payload(request: Request, subject_request: DataSubjectRequest) -> dict[str, Any]:
    download_url = None
    try:
        subject_export_available(request=subject_request)
        token = subject_download_token(request=subject_request)
        download_url = request.build_absolute_uri(reverse("subject-request-download", args=[token]))
    except ApplicationError:
        pass
    return {
        "id": subject_request.pk, "kind": subject_request.kind, "lookup": subject_request.lookup,
        "subject": subject_request.subject_hint, "status": subject_request.status,
        "progress": subject_request.progress, "conversation_count": subject_request.conversation_count,
        "message_count": subject_request.message_count, "error": subject_request.error or None,
        "created_at": subject_request.created_at.isoformat(),
        "finished_at": subject_request.finished_at.isoformat() if subject_request.finished_at else None,
        "expires_at": subject_request.expires_at.isoformat() if subject_request.expires_at else None,
        "download_url": download_url,
    }  # fmt: skip


def _whole_organization_key(api_key: Any) -> None:
    """A visitor's data spans every bot: a key limited to some bots may not export or erase it."""
    if api_key_is_bot_limited(api_key=api_key):
        raise ForbiddenByApiKey("Data subject requests need an API key for every bot of the organization.")


class SubjectRequestCreateView(APIView):
    """POST /api/v1/privacy/requests/: export or erase a visitor's data (``kind``), found by exactly one of
    ``visitor_id``, ``email`` or ``conversation_id``; 202 with the request to poll."""

    authentication_classes = [ApiKeyAuthentication]

    @extend_schema(request=SubjectRequestInput, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        _whole_organization_key(request.auth)
        data = SubjectRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        lookup = next(name for name in ("visitor_id", "email", "conversation_id") if values.get(name))
        subject_request = subject_request_create(
            organization=request.auth.organization, kind=values["kind"],
            lookup=SubjectLookup.CONVERSATION if lookup == "conversation_id" else lookup,
            value=str(values[lookup]), api_key=request.auth,
        )  # fmt: skip
        return Response(subject_request_payload(request, subject_request), status=status.HTTP_202_ACCEPTED)


class SubjectRequestDetailView(APIView):
    """GET /api/v1/privacy/requests/<id>/: progress, counts, and an export's download link (expires)."""

    authentication_classes = [ApiKeyAuthentication]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, request_id: int) -> Response:
        _whole_organization_key(request.auth)
        subject_request = subject_request_get(
            organization_id=request.auth.organization_id, request_id=request_id
        )
        return Response(subject_request_payload(request, subject_request))


class SubjectRequestDownloadView(APIView):
    """GET /api/v1/privacy/download/<token>/: the export archive; the signed token is the credential."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request: Request, token: str) -> FileResponse:
        return subject_export_response(subject_request_by_token(token=token))
