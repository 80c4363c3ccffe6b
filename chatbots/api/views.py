"""Read and feedback endpoints for conversations (DRF, API keys)."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.api.authentication import ApiKeyAuthentication
from accounts.api.inputs import InputSerializer
from chatbots.exports import conversation_export_request, export_file_response
from chatbots.models import Channel, Conversation, ConversationExport, ExportFormat, ExportStatus, Feedback
from chatbots.payloads import message_payload
from chatbots.selectors import (
    InboxFilters,
    api_key_is_bot_limited,
    bots_for_api_key,
    conversation_get_for_api_key,
    conversation_messages,
    conversations_filtered,
    conversations_for_api_key,
    conversations_for_inbox,
    export_by_token,
    export_download_token,
    export_get_for_api_key,
)
from chatbots.services import MAX_FEEDBACK_COMMENT_CHARS, conversation_delete, message_feedback_set
from config.api_pagination import MAX_PAGE_SIZE, CursorPagination


class ApiKeyView(APIView):
    authentication_classes = [ApiKeyAuthentication]


PAGE_SIZE_PARAMETER = OpenApiParameter(
    "page_size", int, description=f"Items per page (at most {MAX_PAGE_SIZE}; default 50)."
)


class ConversationMessagesView(ApiKeyView):
    """GET /api/v1/conversations/<id>/messages: the conversation's messages, oldest first, a page at a time
    (follow ``next``; a cursor stays valid while new messages arrive)."""

    pagination_class = CursorPagination

    @extend_schema(
        parameters=[OpenApiParameter("cursor", str, description="From a previous page's next or previous."),
                    PAGE_SIZE_PARAMETER],
        responses=OpenApiTypes.OBJECT,
    )  # fmt: skip
    def get(self, request: Request, conversation_id: str) -> Response:
        conversation = conversation_get_for_api_key(api_key=request.auth, conversation_id=conversation_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            conversation_messages(conversation=conversation), request, view=self
        )
        return Response(
            {
                "conversation_id": str(conversation.pk),
                "bot": conversation.bot.public_id,
                "next": paginator.get_next_link(),
                "previous": paginator.get_previous_link(),
                "results": [message_payload(message) for message in page],
            }
        )


class FeedbackInput(InputSerializer):
    conversation_id = serializers.UUIDField()
    value = serializers.ChoiceField(choices=[Feedback.UP, Feedback.DOWN, ""], allow_blank=True)
    comment = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_FEEDBACK_COMMENT_CHARS, default=""
    )


class MessageFeedbackView(ApiKeyView):
    """POST /api/v1/messages/<id>/feedback: {"conversation_id", "value": "up"|"down"|"", "comment"?}"""

    @extend_schema(request=FeedbackInput, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, message_id: int) -> Response:
        data = FeedbackInput(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = conversation_get_for_api_key(
            api_key=request.auth, conversation_id=data.validated_data["conversation_id"]
        )
        message = message_feedback_set(
            conversation=conversation,
            message_id=message_id,
            value=data.validated_data["value"],
            comment=data.validated_data["comment"],
        )
        return Response(message_payload(message))


class ConversationListInput(InputSerializer):
    bot = serializers.CharField(required=False, max_length=40, help_text="A bot's public id.")
    visitor = serializers.CharField(required=False, max_length=64, help_text="A visitor id (exact).")
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    since = serializers.DateField(required=False, help_text="Last activity on or after this day.")
    until = serializers.DateField(required=False, help_text="Last activity on or before this day.")
    feedback = serializers.ChoiceField(choices=["up", "down", "any"], required=False)
    unanswered = serializers.BooleanField(required=False, default=False)
    failed = serializers.BooleanField(required=False, default=False)
    language = serializers.RegexField(
        r"^[a-z]{2,3}$", required=False, help_text="The visitor's language, e.g. de (the primary subtag)."
    )
    q = serializers.CharField(required=False, max_length=200, help_text="Words from the messages.")
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)


def conversation_summary(conversation: Conversation) -> dict[str, Any]:
    """A conversation as the inbox lists it (``conversations_for_inbox``)."""
    return {
        "id": str(conversation.pk),
        "bot": conversation.bot.public_id,
        "channel": conversation.channel,
        "language": conversation.language or None,
        "visitor": conversation.visitor_label,
        "visitor_id": conversation.visitor_id,
        "visitor_attributes": conversation.visitor_attributes,
        "title": conversation.first_question,
        "message_count": conversation.message_count,
        "thumbs_down": conversation.has_thumbs_down,
        "unanswered": conversation.has_unanswered,
        "failed": conversation.has_failure,
        "created_at": conversation.created_at.isoformat(),
        "last_message_at": conversation.last_message_at.isoformat(),
    }


class ConversationListView(ApiKeyView):
    """GET /api/v1/conversations/: the inbox — the key's conversations, newest activity first, filtered
    like the admin's inbox, paginated."""

    @extend_schema(
        operation_id="conversations_list", parameters=[ConversationListInput], responses=OpenApiTypes.OBJECT
    )
    def get(self, request: Request) -> Response:
        query = ConversationListInput(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        data = query.validated_data
        conversations = conversations_for_api_key(api_key=request.auth)
        if "visitor" in data:
            conversations = conversations.filter(visitor_id=data["visitor"])
        filters = InboxFilters(
            bot_ids=_bot_ids_for(request.auth, data.get("bot")), channel=data.get("channel", ""), since=data.get("since"), until=data.get("until"),
            feedback=data.get("feedback", ""), unanswered=data["unanswered"], failed=data["failed"],
            language=data.get("language", ""), search=data.get("q", ""),
        )  # fmt: skip
        conversations = conversations_for_inbox(
            conversations_filtered(
                conversations, filters=filters, organization_id=request.auth.organization_id
            )
        )
        paginator = api_settings.DEFAULT_PAGINATION_CLASS()
        page = paginator.paginate_queryset(
            conversations.order_by("-last_message_at", "pk"), request, view=self
        )
        return paginator.get_paginated_response([conversation_summary(c) for c in page])


class ConversationDetailView(ApiKeyView):
    """GET /api/v1/conversations/<id>/: one conversation as the inbox lists it, with its messages;
    DELETE: clear it (the conversation and all its messages; the visitor's next message starts anew)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, conversation_id: str) -> Response:
        conversation = conversation_get_for_api_key(api_key=request.auth, conversation_id=conversation_id)
        summary = conversations_for_inbox(Conversation.objects.filter(pk=conversation.pk)).get()
        messages = conversation_messages(conversation=conversation)
        return Response({**conversation_summary(summary), "messages": [message_payload(m) for m in messages]})

    @extend_schema(responses={204: None})
    def delete(self, request: Request, conversation_id: str) -> Response:
        conversation = conversation_get_for_api_key(api_key=request.auth, conversation_id=conversation_id)
        conversation_delete(conversation=conversation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExportInput(ConversationListInput):
    visitor = None  # type: ignore[assignment]  # exports select by the inbox's filters only
    page = None  # type: ignore[assignment]
    page_size = None  # type: ignore[assignment]
    format = serializers.ChoiceField(choices=ExportFormat.choices, required=False, default=ExportFormat.CSV)


def _bot_ids_for(api_key: Any, public_id: str | None) -> list[int] | None:
    """The bots a listing or export covers: the requested one (if the key may use it), else all the key's
    bots for a key limited to some (``None``: every bot of the organization)."""
    allowed = bots_for_api_key(api_key=api_key)
    if public_id is not None:
        return list(allowed.filter(public_id=public_id).values_list("pk", flat=True))
    return list(allowed.values_list("pk", flat=True)) if api_key_is_bot_limited(api_key=api_key) else None


def export_payload(request: Request, export: ConversationExport) -> dict[str, Any]:
    download_url = None
    if (
        export.status == ExportStatus.READY
        and export.file
        and export.expires_at
        and export.expires_at > timezone.now()
    ):
        token = export_download_token(export=export)
        download_url = request.build_absolute_uri(reverse("conversation-export-download", args=[token]))
    return {
        "id": export.pk, "format": export.format, "status": export.status, "progress": export.progress,
        "conversation_count": export.conversation_count, "message_count": export.message_count,
        "error": export.error or None, "created_at": export.created_at.isoformat(),
        "expires_at": export.expires_at.isoformat() if export.expires_at else None, "download_url": download_url,
    }  # fmt: skip


class ConversationExportView(ApiKeyView):
    """POST /api/v1/conversations/export/: export the conversations the list's filters select (a JSON body
    with the same names, plus ``format``: ``csv`` or ``jsonl``); 202 with the export to poll."""

    @extend_schema(request=ExportInput, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        query = ExportInput(data=request.data)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        filters = InboxFilters(
            bot_ids=_bot_ids_for(request.auth, data.get("bot")), channel=data.get("channel", ""),
            since=data.get("since"), until=data.get("until"), feedback=data.get("feedback", ""),
            unanswered=data["unanswered"], failed=data["failed"], language=data.get("language", ""),
            search=data.get("q", ""),
        )  # fmt: skip
        organization = request.auth.organization
        export = conversation_export_request(
            organization=organization, user=None, filters=filters, format=data["format"]
        )
        return Response(export_payload(request, export), status=202)


class ExportDetailView(ApiKeyView):
    """GET /api/v1/exports/<id>/: an export's progress, then its download link (which expires)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, export_id: int) -> Response:
        export = export_get_for_api_key(api_key=request.auth, export_id=export_id)
        return Response(export_payload(request, export))


class ExportDownloadView(APIView):
    """GET /api/v1/exports/download/<token>/: the file; the signed token is the credential, until it expires."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    # Not an operation of the API's schema: a link handed out as ``download_url`` (its only parameter is the
    # opaque token, which the signature checks).
    @extend_schema(exclude=True)
    def get(self, request: Request, token: str) -> FileResponse:
        return export_file_response(export_by_token(token=token))
