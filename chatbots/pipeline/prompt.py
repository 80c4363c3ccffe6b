"""Prompt assembly within a token budget: system prompt, numbered context, recent turns, the message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatbots.llm.events import Passage

STRICT_RULES = (
    "Answer only from the context below. If the context does not contain the answer, say that you do not "
    "know instead of guessing. Cite the sources you used as [1], [2], ... matching the context numbers."
)
GENERAL_RULES = (
    "Prefer the context below and cite the sources you used as [1], [2], ...; when it does not cover the "
    "question you may answer from general knowledge, and say so."
)


def estimate_tokens(text: str) -> int:
    """About four characters per token for English-like text; cheap, and close enough for budgeting."""
    return len(text) // 4 + 1


def build_messages(
    *,
    system_prompt: str,
    strict: bool,
    passages: Sequence[Passage],
    history: Sequence[dict[str, str]],
    question: str,
    budget_tokens: int,
) -> list[dict[str, Any]]:
    """Fit context and history into the budget: the question and system prompt always, then the best
    passages (in rank order), then as many of the most recent turns as still fit."""
    rules = STRICT_RULES if strict else GENERAL_RULES
    remaining = budget_tokens - estimate_tokens(system_prompt) - estimate_tokens(rules) - estimate_tokens(question)
    context_parts: list[str] = []
    context_share = remaining * 2 // 3  # keep a third for conversation memory
    for number, passage in enumerate(passages, start=1):
        label = passage.source_title + (f", page {passage.page}" if passage.page else "")
        block = f"[{number}] ({label})\n{passage.content.strip()}"
        cost = estimate_tokens(block)
        if cost > context_share:
            break
        context_parts.append(block)
        context_share -= cost
        remaining -= cost
    turns: list[dict[str, str]] = []
    for turn in reversed(history):
        cost = estimate_tokens(turn["content"]) + 4
        if cost > remaining:
            break
        turns.append(turn)
        remaining -= cost
    turns.reverse()
    context = "\n\n".join(context_parts) if context_parts else "(no relevant context was found)"
    system = f"{system_prompt.strip()}\n\n{rules}\n\nContext:\n{context}"
    return [{"role": "system", "content": system}, *turns, {"role": "user", "content": question}]
