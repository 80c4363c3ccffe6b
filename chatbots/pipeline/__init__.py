"""The one chat pipeline behind every transport (see core.answer_message)."""

from chatbots.pipeline.core import answer_message, validate_visitor_id, visitor_language
from chatbots.pipeline.events import Accepted, ChatEvent, ChatRequest, Delta, Finished, HandoffUpdate, Sources

__all__ = [
    "Accepted", "ChatEvent", "ChatRequest", "Delta", "Finished", "HandoffUpdate", "Sources", "answer_message",
    "validate_visitor_id", "visitor_language",
]  # fmt: skip
