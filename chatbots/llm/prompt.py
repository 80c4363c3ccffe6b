"""Turn a bot, the conversation and the retrieved passages into chat messages for the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from chatbots.llm.events import Passage

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
    if passage.url:
        label += f" ({passage.url})"
    return label


def system_message(*, bot: Bot, passages: Sequence[Passage]) -> str:
    parts = [bot.system_prompt.strip() or "You are a helpful assistant."]
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


def build_messages(*, bot: Bot, messages: Sequence[dict], passages: Sequence[Passage]) -> list[dict]:
    """System prompt with the knowledge, then at most ``bot.history_turns`` earlier turns, then the message.

    ``messages`` are the conversation in order, ending with the user's new message. When they start with a
    system message the caller has assembled the prompt already (with the passages), and it is used as is.
    """
    if messages and messages[0].get("role") == "system":
        # The caller (the chat pipeline) built the prompt within its token budget: send it as it is,
        # adding only the bot's language rule, which the prompt does not carry.
        prompt = [dict(m) for m in messages]
        if bot.language and bot.language != "auto":
            rule = f"Always answer in {LANGUAGE_NAMES.get(bot.language, bot.language)}."
            prompt[0]["content"] = f"{prompt[0].get('content', '')}\n\n{rule}"
        return prompt
    extra_system = [m for m in messages if m.get("role") == "system"]
    turns = [m for m in messages if m.get("role") in ("user", "assistant")]
    if turns:
        *history, last = turns
        keep = max(bot.history_turns, 0) * 2  # a turn is a question and its answer
        history = history[-keep:] if keep else []
        turns = [*history, last]
    return [
        {"role": "system", "content": system_message(bot=bot, passages=passages)},
        *({"role": "system", "content": str(m.get("content", ""))} for m in extra_system),
        *({"role": m["role"], "content": str(m.get("content", ""))} for m in turns),
    ]


def last_user_message(messages: Sequence[dict]) -> str:
    return next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
