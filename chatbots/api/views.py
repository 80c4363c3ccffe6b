"""Read and feedback endpoints for conversations (DRF, API keys)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import ApiKeyAuthentication
from accounts.api.inputs import InputSerializer
from chatbots.models import Feedback
from chatbots.payloads import message_payload
from chatbots.selectors import conversation_get_for_api_key, conversation_messages
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
