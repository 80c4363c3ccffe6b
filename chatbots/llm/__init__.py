"""The LLM provider layer: ``stream_chat`` and the events it yields.

async for event in stream_chat(bot=bot, messages=[{"role": "user", "content": "Hi"}], passages=chunks):
    if isinstance(event, TextDelta): ...
    elif isinstance(event, Completed): ...
"""

from chatbots.llm import checks  # noqa: F401 - registers the system checks
from chatbots.llm.client import stream_chat
from chatbots.llm.connection import ConnectionReport, check_endpoint
from chatbots.llm.endpoints import Endpoint, endpoints_for
from chatbots.llm.errors import redact
from chatbots.llm.events import (
    Completed,
    Generation,
    Interrupted,
    LLMEvent,
    LLMUnavailable,
    Passage,
    TextDelta,
    Usage,
)

__all__ = [
    "Completed",
    "ConnectionReport",
    "Endpoint",
    "Generation",
    "Interrupted",
    "LLMEvent",
    "LLMUnavailable",
    "Passage",
    "TextDelta",
    "Usage",
    "check_endpoint",
    "endpoints_for",
    "redact",
    "stream_chat",
]
