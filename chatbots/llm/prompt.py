"""Turn a bot, the conversation and the retrieved passages into chat messages for the model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.conf import settings

from chatbots.llm.events import Passage
from knowledge.models import timestamp
from knowledge.selectors import media_link

if TYPE_CHECKING:
    from chatbots.models import Bot

PASSAGE_CHAR_LIMIT = 2000
LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "nl": "Dutch",
    "pt": "Portuguese",
    "pl": "Polish",
}


def source_label(passage: Passage) -> str:
    label = passage.source_title or "Untitled source"
    if passage.page:
        label += f", page {passage.page}"
    if passage.start is not None:
        label += f", at {timestamp(passage.start)}"
    if passage.url:
        label += f" ({media_link(passage.url, passage.start)})"
    return label


def system_message(
    *, bot: Bot, passages: Sequence[Passage], instructions: str = "", other_knowledge_language: str = ""
) -> str:
    """The bot's prompt, the rules about knowledge and language, and the passages. ``other_knowledge_language``: the
    knowledge's language (a text search configuration name, "english") when the visitor writes in another
    one: a model reading English passages tends to answer in English unless told otherwise. The visitor's
    language is not named: told from a few words by stop words, it is often ambiguous (Spanish "mi" is
    Italian too), while the model reads it without fail."""
    parts = [bot.system_prompt.strip() or "You are a helpful assistant."]
    if instructions.strip():
        # An API client's system message, for bots that accept one: after the bot's own prompt, before
        # the rules about knowledge, which keep the last word.
        parts.append(f"Further instructions from the application:\n{instructions.strip()}")
    if bot.answer_style == "strict":
        parts.append(
            "Answer only from the knowledge below. If it does not contain the answer, say so briefly"
            + (f" and reply: {bot.fallback_reply.strip()}" if bot.fallback_reply.strip() else ".")
        )
    else:
        parts.append(
            "Prefer the knowledge below. When it does not cover the question you may use general knowledge, "
            "and say that you did."
        )
    if bot.language and bot.language != "auto":
        parts.append(f"Always answer in {LANGUAGE_NAMES.get(bot.language, bot.language)}.")
    elif other_knowledge_language:
        parts.append(
            "Answer in the language of the user's last message, even though the knowledge below is written in "
            f"{other_knowledge_language.capitalize()}."
        )
    else:
        parts.append("Answer in the language of the user's last message.")
    if passages:
        parts.append("Cite the sources you use by their number in square brackets, like [1].")
        context = "\n\n".join(
            f"[{number}] {source_label(p)}\n{p.content[:PASSAGE_CHAR_LIMIT]}"
            for number, p in enumerate(passages, start=1)
        )
        parts.append(f"Knowledge:\n{context}")
    else:
        parts.append("Knowledge: (nothing relevant was found)")
    return "\n\n".join(parts)


def estimate_tokens(text: str) -> int:
    """About four characters per token; cheap, and close enough to keep a prompt inside its budget."""
    return len(text) // 4 + 1


def build_messages(
    *,
    bot: Bot,
    messages: Sequence[dict],
    passages: Sequence[Passage],
    budget_tokens: int | None = None,
    instructions: str = "",
    other_knowledge_language: str = "",
) -> list[dict]:
    """System prompt with the knowledge, recent turns and the new message, within a token budget.

    ``messages`` are the conversation in order, ending with the user's new message. The system prompt and
    the message always go in; then the best passages in rank order (up to two thirds of what is left), then
    as many of the newest turns (at most ``bot.history_turns``) as still fit.
    """
    budget = budget_tokens or settings.CHAT_PROMPT_TOKEN_BUDGET
    turns = [m for m in messages if m.get("role") in ("user", "assistant")]
    if not turns:
        return [
            {
                "role": "system",
                "content": system_message(
                    bot=bot,
                    passages=passages,
                    instructions=instructions,
                    other_knowledge_language=other_knowledge_language,
                ),
            }
        ]
    *history, last = turns
    keep = max(bot.history_turns, 0) * 2  # a turn is a question and its answer
    history = history[-keep:] if keep else []

    remaining = (
        budget
        - estimate_tokens(
            system_message(
                bot=bot,
                passages=[],
                instructions=instructions,
                other_knowledge_language=other_knowledge_language,
            )
        )
        - estimate_tokens(str(last["content"]))
    )
    context_share = remaining * 2 // 3
    chosen: list[Passage] = []
    for passage in passages:
        cost = (
            estimate_tokens(source_label(passage)) + estimate_tokens(passage.content[:PASSAGE_CHAR_LIMIT]) + 4
        )
        if cost > context_share:
            break
        chosen.append(passage)
        context_share -= cost
        remaining -= cost
    kept: list[dict] = []
    for turn in reversed(history):
        cost = estimate_tokens(str(turn.get("content", ""))) + 4
        if cost > remaining:
            break
        kept.insert(0, turn)
        remaining -= cost
    return [
        {
            "role": "system",
            "content": system_message(
                bot=bot,
                passages=chosen,
                instructions=instructions,
                other_knowledge_language=other_knowledge_language,
            ),
        },
        *({"role": m["role"], "content": str(m.get("content", ""))} for m in [*kept, last]),
    ]


_CITATION = re.compile(r"\[(\d{1,3})\]")


def cited_passages(answer: str, passages: Sequence[Passage]) -> tuple[int, ...] | None:
    """The chunk ids of the passages an answer cites as ``[n]`` (the prompt numbers the passages it includes
    from 1, in rank order, and always includes a prefix of them); ``None`` when it cites none of them."""
    cited = []
    for match in _CITATION.finditer(answer):
        number = int(match.group(1))
        if 1 <= number <= len(passages) and passages[number - 1].chunk_id not in cited:
            cited.append(passages[number - 1].chunk_id)
    return tuple(cited) or None


def last_user_message(messages: Sequence[dict]) -> str:
    return next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
