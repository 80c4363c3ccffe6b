"""What goes into the chat pipeline and what comes out of it, for every transport.

``answer_message(ChatRequest)`` yields ``Accepted``, then ``Delta``*, ``Sources`` (when there are any),
``HandoffUpdate`` (when a person takes over), then ``Finished``; each transport only turns these into its
own frames.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, TypedDict

from chatbots.llm.events import Generation, Turn
from chatbots.models import Bot, Conversation
from knowledge.selectors import SourcePayload


@dataclass
class ChatRequest:
    bot: Bot
    text: Any  # validated by the pipeline: transports pass what the client sent
    channel: str
    visitor_id: str = ""
    conversation_id: str | None = None
    api_key_id: int | None = None
    client_ip: str = ""
    visitor_attributes: dict[str, Any] | None = None
    language: str = ""  # the visitor's language as the client named it (normalized by the pipeline)
    # The OpenAI-compatible endpoint brings its own history instead of a stored conversation.
    history: list[Turn] | None = None
    # An API client's generation parameters (OpenAI's temperature, max_tokens, stop, system message).
    generation: Generation | None = None
    # The visitor pressed "talk to a person" (the widget's button): a handoff whatever the text says.
    asks_for_person: bool = False


@dataclass(frozen=True)
class Accepted:
    conversation: Conversation
    user_message_id: int

    @property
    def conversation_id(self) -> uuid.UUID:
        return self.conversation.pk


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class HandoffUpdate:
    """The conversation is (now) handed to a person (chatbots.handoff): the bot did not answer, or answered
    and then escalated. ``available``: someone can answer now; otherwise the visitor is told nobody is."""

    status: str
    available: bool
    operator_name: str = ""


@dataclass(frozen=True)
class Sources:
    sources: list[SourcePayload]


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int


class DonePayload(TypedDict):
    """The end of an answer as the socket's and the SSE stream's ``done`` and the JSON reply carry it."""

    message_id: int | None
    conversation_id: str | None
    usage: Usage
    incomplete: bool
    offline: bool


@dataclass(frozen=True)
class Finished:
    message_id: int | None
    conversation_id: uuid.UUID | None
    text: str
    sources: list[SourcePayload]
    prompt_tokens: int
    completion_tokens: int
    incomplete: bool
    offline: bool
    error_code: str = ""
    error_message: str = ""
    hit_token_limit: bool = False  # the model stopped at its output limit (not an interruption)

    @property
    def provider_unavailable(self) -> bool:
        """No model could answer: the transports tell the visitor why, then end the answer."""
        return self.error_code == "llm_unavailable"

    def done_payload(self) -> DonePayload:
        return {
            "message_id": self.message_id,
            "conversation_id": str(self.conversation_id) if self.conversation_id else None,
            "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens},
            "incomplete": self.incomplete,
            "offline": self.offline,
        }

    @classmethod
    def failed(cls, conversation_id: uuid.UUID | None) -> Finished:
        """The end of an answer that broke on our side (a bug): nothing stored beyond what streamed."""
        return cls(message_id=None, conversation_id=conversation_id, text="", sources=[], prompt_tokens=0,
                   completion_tokens=0, incomplete=True, offline=False)  # fmt: skip


ChatEvent = Accepted | Delta | Sources | HandoffUpdate | Finished
