"""What the provider layer yields to the chat pipeline, and the one error it can raise."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol, TypedDict, runtime_checkable


class Turn(TypedDict):
    """One earlier message of the conversation as the model sees it."""

    role: Literal["user", "assistant"]
    content: str


@runtime_checkable
class Passage(Protocol):
    """A retrieved piece of knowledge (``knowledge.retrieval.RetrievedChunk`` satisfies this)."""

    chunk_id: int
    source_id: int
    source_title: str
    url: str | None
    page: int | None
    content: str
    score: float
    start: float | None  # seconds into a recording


@dataclass(frozen=True)
class Generation:
    """What an API client asked of one answer (OpenAI's parameters); ``None`` or empty: the bot's setting.

    The bot sets the limits: ``max_tokens`` never raises the bot's ``max_output_tokens``, and
    ``instructions`` (a client's system message) only reach the model when the bot appends them."""

    temperature: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    instructions: str = ""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Completed:
    """Always the last event of a stream.

    ``incomplete`` is set when the upstream stream broke after text had already been relayed (the text
    cannot be retracted, so the answer ends there); ``fallback`` when the answer came from the bot's
    fallback model or from the offline provider after the configured models failed. ``used_passages``:
    the chunk ids of the passages the answer quotes, when the provider knows (the offline one does), so
    only their sources are shown; None: it may have used any of them. ``hit_token_limit``: the model
    stopped because it reached its output limit (OpenAI's ``finish_reason: "length"``).
    """

    model: str
    provider: str
    usage: Usage
    cost_usd: Decimal | None
    offline: bool
    incomplete: bool = False
    fallback: bool = False
    used_passages: tuple[int, ...] | None = None
    hit_token_limit: bool = False


LLMEvent = TextDelta | Completed


@dataclass
class Interrupted:
    """Filled by ``stream_chat`` when its caller stops it before ``Completed`` (the visitor left, the
    server is shutting down): the model and provider that were streaming, the tokens used so far (the
    provider's count if it sent one, else estimated) and their estimated cost, so an aborted answer is
    still accounted for."""

    completed: Completed | None = None


class LLMUnavailable(Exception):
    """Not even the offline provider could answer; ``user_message`` is safe to show to a visitor."""

    def __init__(self, user_message: str = "Sorry, I can't answer right now. Please try again in a moment."):
        super().__init__(user_message)
        self.user_message = user_message
