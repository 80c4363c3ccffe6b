"""What chatbots tells webhooks (docs/webhooks.md): a conversation started, a message was stored, a visitor
rated an answer. The payloads are shaped here, from chatbots' own models; webhooks sends them.

A message's ``author`` comes from its role, so roles added later (an operator's replies) are reported by
their own name: visitor for ``user``, bot for ``assistant``, the role itself otherwise.
"""

from __future__ import annotations

from typing import Any

from chatbots.models import Conversation, Lead, Message, MessageRole
from webhooks.models import EventType
from webhooks.selectors import event_wanted
from webhooks.services import webhook_event

MESSAGE_AUTHORS = {MessageRole.USER: "visitor", MessageRole.ASSISTANT: "bot"}


def message_author(role: str) -> str:
    return MESSAGE_AUTHORS.get(role, role)


def conversation_data(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.pk),
        "bot": {"id": conversation.bot.public_id, "name": conversation.bot.name},
        "channel": conversation.channel,
        "visitor_id": conversation.visitor_id,
        "visitor": conversation.visitor_label,
        "visitor_attributes": conversation.visitor_attributes or {},
        "language": conversation.language,
        "created_at": conversation.created_at,
    }


def message_data(message: Message) -> dict[str, Any]:
    data = {
        "id": message.pk,
        "author": message_author(message.role),
        "role": message.role,
        "text": message.text,
        "status": message.status,
        "created_at": message.created_at,
    }
    if message.role == MessageRole.ASSISTANT:
        data["sources"] = message.sources
        data["answered_from_faq"] = message.answered_from_faq
    return data


def conversation_started(*, conversation: Conversation) -> None:
    webhook_event(
        organization_id=conversation.organization_id, event_type=EventType.CONVERSATION_STARTED,
        data={"conversation": conversation_data(conversation)}, visitor_id=conversation.visitor_id,
    )  # fmt: skip


def message_created(*, message: Message) -> None:
    """``message.created`` for any stored message (call in the transaction that stores it)."""
    if not event_wanted(organization_id=message.organization_id, event_type=EventType.MESSAGE_CREATED):
        return
    conversation = Conversation.objects.select_related("bot").get(pk=message.conversation_id)
    webhook_event(
        organization_id=message.organization_id, event_type=EventType.MESSAGE_CREATED,
        data={"conversation": conversation_data(conversation), "message": message_data(message)},
        visitor_id=conversation.visitor_id,
    )  # fmt: skip


def feedback_created(*, message: Message) -> None:
    """``feedback.created`` when a visitor rates an answer up or down."""
    if not event_wanted(organization_id=message.organization_id, event_type=EventType.FEEDBACK_CREATED):
        return
    conversation = Conversation.objects.select_related("bot").get(pk=message.conversation_id)
    webhook_event(
        organization_id=message.organization_id, event_type=EventType.FEEDBACK_CREATED,
        data={
            "conversation": conversation_data(conversation),
            "message": message_data(message),
            "feedback": {"value": message.feedback, "comment": message.feedback_comment,
                         "created_at": message.feedback_at},
        },
        visitor_id=conversation.visitor_id,
    )  # fmt: skip


def _handoff_data(conversation: Conversation) -> dict[str, Any]:
    operator = conversation.handoff_operator
    return {
        "status": conversation.handoff_status,
        "reason": conversation.handoff_reason,
        "operator": {"id": operator.pk, "name": operator.get_full_name() or operator.email}
        if operator
        else None,
        "requested_at": conversation.handoff_requested_at,
        "taken_at": conversation.handoff_taken_at,
    }


def handoff_changed(*, conversation: Conversation, event_type: str) -> None:
    """``handoff.requested`` (the conversation waits for a person) or ``handoff.taken`` (an operator took it)."""
    webhook_event(
        organization_id=conversation.organization_id, event_type=event_type,
        data={"conversation": conversation_data(conversation), "handoff": _handoff_data(conversation)},
        visitor_id=conversation.visitor_id,
    )  # fmt: skip


def lead_created(*, lead: Lead) -> None:
    """``lead.created`` when a visitor leaves contact details in the widget's lead form."""
    conversation = lead.conversation
    webhook_event(
        organization_id=lead.organization_id, event_type=EventType.LEAD_CREATED,
        data={
            "lead": {"id": lead.pk, "bot": {"id": lead.bot.public_id, "name": lead.bot.name}, "name": lead.name,
                     "email": lead.email, "message": lead.message, "reason": lead.reason, "language": lead.language,
                     "consent_text": lead.consent_text, "created_at": lead.created_at},
            "conversation": conversation_data(conversation) if conversation is not None else None,
        },
        visitor_id=lead.visitor_id,
    )  # fmt: skip
