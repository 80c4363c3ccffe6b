"""Database reads and writes of the chat pipeline (sync; the pipeline calls them in a worker thread)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from chatbots.models import Bot, Conversation, Feedback, Message, MessageRole, MessageStatus
from chatbots.pipeline.errors import ConversationNotFound, InvalidMessage, MessageNotFound

HISTORY_STATUSES = (MessageStatus.COMPLETE, MessageStatus.INCOMPLETE)


def conversation_get(*, bot: Bot, conversation_id: str | uuid.UUID, visitor_id: str = "") -> Conversation:
    """The bot's conversation with that id; another bot's (or tenant's) id is simply not found.

    A widget conversation also has to match the visitor it was started by, when both are known."""
    try:
        conversation = Conversation.objects.get(pk=conversation_id, bot=bot)
    except (Conversation.DoesNotExist, ValueError, TypeError):
        raise ConversationNotFound() from None
    if visitor_id and conversation.visitor_id and conversation.visitor_id != visitor_id:
        raise ConversationNotFound()
    return conversation


@dataclass(frozen=True)
class RecordedMessage:
    message: Message
    history: list[dict[str, str]]  # the conversation's recent turns before the message, oldest first


@transaction.atomic
def user_message_record(
    *,
    bot: Bot,
    conversation_id: str | None,
    channel: str,
    visitor_id: str,
    visitor_attributes: dict[str, Any] | None,
    text: str,
    refused_code: str = "",
    history_turns: int = 0,
) -> RecordedMessage:
    """Persist the visitor's message before anything else happens (also when it is refused), and read the
    ``history_turns`` turns before it in the same transaction (one trip to a worker thread)."""
    if conversation_id:
        conversation = conversation_get(bot=bot, conversation_id=conversation_id, visitor_id=visitor_id)
        Conversation.objects.filter(pk=conversation.pk).update(last_message_at=timezone.now())
    else:
        conversation = Conversation.objects.create(
            organization_id=bot.organization_id,
            bot=bot,
            channel=channel,
            visitor_id=visitor_id,
            visitor_attributes=visitor_attributes or {},
        )
    message = Message.objects.create(
        organization_id=bot.organization_id,
        conversation=conversation,
        role=MessageRole.USER,
        text=text,
        status=MessageStatus.FAILED if refused_code else MessageStatus.COMPLETE,
        error_code=refused_code,
    )
    history = []
    if conversation_id and not refused_code:
        history = recent_turns(
            conversation_id=conversation.pk, before_message_id=message.pk, turns=history_turns
        )
    return RecordedMessage(message=message, history=history)


def user_message_refuse(*, message_id: int, code: str) -> None:
    Message.objects.filter(pk=message_id).update(status=MessageStatus.FAILED, error_code=code)


def recent_turns(*, conversation_id: uuid.UUID, before_message_id: int, turns: int) -> list[dict[str, str]]:
    """The last ``turns`` exchanges before the current message, oldest first, for the prompt."""
    if turns <= 0:
        return []
    rows = list(
        Message.objects.filter(
            conversation_id=conversation_id, pk__lt=before_message_id, status__in=HISTORY_STATUSES
        )
        .exclude(text="")
        .order_by("-created_at", "-id")
        .values("role", "text")[: turns * 2]
    )
    return [{"role": row["role"], "content": row["text"]} for row in reversed(rows)]


@dataclass
class AssistantRecord:
    text: str = ""
    status: str = MessageStatus.COMPLETE
    error_code: str = ""
    sources: list[dict[str, Any]] | None = None
    answered_from_faq: bool = False
    model: str = ""
    provider: str = ""
    offline: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal | None = None
    latency_ms: int | None = None
    first_token_ms: int | None = None
    user_notice: str = ""  # shown to the visitor, not stored


def assistant_message_save(
    *, conversation_id: uuid.UUID, organization_id: int, record: AssistantRecord
) -> Message:
    message = Message.objects.create(
        organization_id=organization_id,
        conversation_id=conversation_id,
        role=MessageRole.ASSISTANT,
        text=record.text,
        status=record.status,
        error_code=record.error_code,
        sources=record.sources or [],
        answered_from_faq=record.answered_from_faq,
        model=record.model,
        provider=record.provider,
        offline=record.offline,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cost_usd=record.cost_usd,
        latency_ms=record.latency_ms,
        first_token_ms=record.first_token_ms,
    )
    Conversation.objects.filter(pk=conversation_id).update(last_message_at=timezone.now())
    return message


def feedback_record(*, conversation: Conversation, message_id: int, value: str, comment: str = "") -> Message:
    """Thumbs up/down (or "" to withdraw) on one of this conversation's assistant messages."""
    if value not in (Feedback.UP, Feedback.DOWN, Feedback.NONE):
        raise InvalidMessage("Feedback must be 'up', 'down' or empty.")
    if len(comment) > 2000:
        raise InvalidMessage("The feedback comment is too long (at most 2000 characters).")
    updated = Message.objects.filter(
        pk=message_id, conversation=conversation, role=MessageRole.ASSISTANT
    ).update(feedback=value, feedback_comment=comment, feedback_at=timezone.now())
    if not updated:
        raise MessageNotFound()
    return Message.objects.get(pk=message_id)


def conversation_history(*, conversation: Conversation) -> list[dict[str, Any]]:
    """What a returning visitor or API client sees of the conversation (refused messages included)."""
    return [message_as_dict(message) for message in conversation.messages.order_by("created_at", "id")]


def message_as_dict(message: Message) -> dict[str, Any]:
    return {
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "status": message.status,
        "sources": message.sources,
        "feedback": message.feedback or None,
        "created_at": message.created_at.isoformat(),
    }
