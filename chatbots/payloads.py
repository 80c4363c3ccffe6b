"""A stored message as visitors and API clients read it back (socket ``history`` frame, REST API)."""

from __future__ import annotations

from typing import TypedDict

from chatbots.models import Message
from knowledge.selectors import SourcePayload


class MessagePayload(TypedDict):
    id: int
    role: str  # "user", "assistant", or "operator" (a person's reply after a handoff)
    operator_name: str  # the person who wrote an operator's reply, "" otherwise
    text: str
    status: str
    offline: bool  # answered from the knowledge without a language model (the widget says so)
    sources: list[SourcePayload]
    feedback: str | None
    created_at: str


def message_payload(message: Message) -> MessagePayload:
    return {
        "id": message.pk,
        "role": message.role,
        "operator_name": message.operator_name,
        "text": message.text,
        "status": message.status,
        "offline": message.offline,
        "sources": message.sources,
        "feedback": message.feedback or None,
        "created_at": message.created_at.isoformat(),
    }
