"""The one chat pipeline behind every transport (see core.answer_message)."""

from chatbots.pipeline.core import Accepted, ChatRequest, Delta, Finished, Sources, answer_message
from chatbots.pipeline.errors import ChatError

__all__ = ["Accepted", "ChatError", "ChatRequest", "Delta", "Finished", "Sources", "answer_message"]
