"""The offline extractive provider: answers with the most relevant retrieved passages, no model needed.

It is the embedded default when no provider key is configured anywhere, and the last resort when every
configured model fails. It says plainly that no language model is connected.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from chatbots.llm.events import Completed, LLMEvent, Passage, TextDelta, Usage
from chatbots.llm.prompt import source_label

if TYPE_CHECKING:
    from chatbots.models import Bot

OFFLINE_PROVIDER = "offline"
OFFLINE_MODEL = "extractive"
MAX_PASSAGES = 3
EXCERPT_CHARS = 450
NOTICE = "No language model is connected, so here is what I found in the knowledge base:"
NOTICE_AFTER_FAILURE = (
    "The language model is not reachable right now, so here is what I found in the knowledge base:"
)
NOTHING_FOUND = "I couldn't find anything about this in my knowledge base."
STOPWORDS = set(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "der",
        "die",
        "das",
        "und",
        "ist",
        "wie",
        "was",
        "wer",
        "ich",
    ]
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def _terms(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if w not in STOPWORDS and len(w) > 1}


def best_excerpt(content: str, question: str, limit: int = EXCERPT_CHARS) -> str:
    """The run of sentences around the sentence sharing most words with the question, within ``limit``."""
    sentences = [s.strip() for s in _SENTENCE.split(content) if s.strip()]
    if not sentences:
        return ""
    terms = _terms(question)
    scores = [len(terms & _terms(s)) for s in sentences]
    start = end = max(range(len(sentences)), key=lambda i: (scores[i], -i))
    length = len(sentences[start])
    while True:  # grow the window forwards first (context follows), then backwards
        if end + 1 < len(sentences) and length + len(sentences[end + 1]) + 1 <= limit:
            end += 1
            length += len(sentences[end]) + 1
        elif start > 0 and length + len(sentences[start - 1]) + 1 <= limit:
            start -= 1
            length += len(sentences[start]) + 1
        else:
            break
    excerpt = " ".join(sentences[start : end + 1])
    if len(excerpt) > limit:
        excerpt = excerpt[: limit - 1].rsplit(" ", 1)[0] + "…"
    return excerpt


def compose_answer(
    *, bot: Bot, question: str, passages: Sequence[Passage], after_failure: bool = False
) -> str:
    if not passages:
        reply = (bot.fallback_reply or "").strip() or NOTHING_FOUND
        if after_failure:
            return f"{reply}\n\n(The language model is not reachable right now; please try again later.)"
        return f"{reply}\n\n(No language model is connected; I can only answer from the knowledge base.)"
    parts = [NOTICE_AFTER_FAILURE if after_failure else NOTICE]
    for number, passage in enumerate(passages[:MAX_PASSAGES], start=1):
        excerpt = best_excerpt(passage.content, question)
        parts.append(f"[{number}] {excerpt}\n— Source: {source_label(passage)}")
    return "\n\n".join(parts)


async def offline_stream(
    *, bot: Bot, question: str, passages: Sequence[Passage], after_failure: bool = False
) -> AsyncIterator[LLMEvent]:
    answer = compose_answer(bot=bot, question=question, passages=passages, after_failure=after_failure)
    pieces = re.findall(r"\S+\s*", answer)
    for index in range(0, len(pieces), 3):  # a few words per delta, so it streams like a model does
        yield TextDelta("".join(pieces[index : index + 3]))
        await asyncio.sleep(0)
    yield Completed(
        model=OFFLINE_MODEL,
        provider=OFFLINE_PROVIDER,
        usage=Usage(0, 0),
        cost_usd=Decimal(0),
        offline=True,
        fallback=after_failure,
    )
