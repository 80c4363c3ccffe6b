"""Read and feedback endpoints for conversations (DRF, API keys)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.api.authentication import ApiKeyAuthentication
from accounts.api.inputs import InputSerializer
from chatbots.models import Channel, Conversation, Feedback
from chatbots.payloads import message_payload
from chatbots.selectors import (
    InboxFilters,
    bots_by_public_ids,
    conversation_get_for_api_key,
    conversation_messages,
    conversations_filtered,
    conversations_for_api_key,
    conversations_for_inbox,
)
from chatbots.services import MAX_FEEDBACK_COMMENT_CHARS, message_feedback_set


class ApiKeyView(APIView):
    authentication_classes = [ApiKeyAuthentication]


class ConversationMessagesView(ApiKeyView):
    """GET /api/v1/conversations/<id>/messages: the whole conversation, oldest first."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, conversation_id: str) -> Response:
        conversation = conversation_get_for_api_key(api_key=request.auth, conversation_id=conversation_id)
        messages = conversation_messages(conversation=conversation)
        return Response(
            {
                "conversation_id": str(conversation.pk),
                "bot": conversation.bot.public_id,
                "messages": [message_payload(message) for message in messages],
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
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    since = serializers.DateField(required=False, help_text="Last activity on or after this day.")
    until = serializers.DateField(required=False, help_text="Last activity on or before this day.")
    feedback = serializers.ChoiceField(choices=["up", "down", "any"], required=False)
    unanswered = serializers.BooleanField(required=False, default=False)
    failed = serializers.BooleanField(required=False, default=False)
    q = serializers.CharField(required=False, max_length=200, help_text="Words from the messages.")
    page = serializers.IntegerField(required=False, min_value=1)


def conversation_summary(conversation: Conversation) -> dict[str, Any]:
    """A conversation as the inbox lists it (annotated by ``conversations_for_inbox``)."""
    return {
        "id": str(conversation.pk),
        "bot": conversation.bot.public_id,
        "channel": conversation.channel,
        "visitor": conversation.visitor_label,
        "visitor_id": conversation.visitor_id,
        "visitor_attributes": conversation.visitor_attributes,
        "title": conversation.first_question,
        "message_count": conversation.n_messages,
        "thumbs_down": conversation.has_down,
        "unanswered": conversation.has_unanswered,
        "failed": conversation.has_failure,
        "created_at": conversation.created_at.isoformat(),
        "last_message_at": conversation.last_message_at.isoformat(),
    }


class ConversationListView(ApiKeyView):
    """GET /api/v1/conversations/: the inbox — the key's conversations, newest activity first, filtered
    like the admin's inbox, paginated."""

    @extend_schema(parameters=[ConversationListInput], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        query = ConversationListInput(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        data = query.validated_data
        conversations = conversations_for_api_key(api_key=request.auth)
        bot_ids = None
        if "bot" in data:
            bots, _ = bots_by_public_ids(
                organization_id=request.auth.organization_id, public_ids=[data["bot"]]
            )
            bot_ids = [bot.pk for bot in bots]  # an unknown bot (or another organization's): no conversations
        filters = InboxFilters(
            bot_ids=bot_ids, channel=data.get("channel", ""), since=data.get("since"), until=data.get("until"),
            feedback=data.get("feedback", ""), unanswered=data["unanswered"], failed=data["failed"],
            search=data.get("q", ""),
        )  # fmt: skip
        conversations = conversations_for_inbox(conversations_filtered(conversations, filters=filters))
        paginator = api_settings.DEFAULT_PAGINATION_CLASS()
        page = paginator.paginate_queryset(
            conversations.order_by("-last_message_at", "pk"), request, view=self
        )
        return paginator.get_paginated_response([conversation_summary(c) for c in page])


class ConversationDetailView(ApiKeyView):
    """GET /api/v1/conversations/<id>/: one conversation as the inbox lists it, with its messages."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, conversation_id: str) -> Response:
        conversation = conversation_get_for_api_key(api_key=request.auth, conversation_id=conversation_id)
        summary = conversations_for_inbox(Conversation.objects.filter(pk=conversation.pk)).get()
        messages = conversation_messages(conversation=conversation)
        return Response({**conversation_summary(summary), "messages": [message_payload(m) for m in messages]})
