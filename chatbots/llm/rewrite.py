"""A follow-up rewritten by the bot's model into a question that stands on its own, to be searched.

"And for how long max?" names nothing; the model, given the user's earlier messages, turns it into "What is
the longest I can pause my subscription?". One short call to the bot's own model (not its fallback: the
offline conversational search is the fallback), limited to ``LLM_REWRITE_MAX_TOKENS`` and
``LLM_REWRITE_TIMEOUT``. Whatever goes wrong (timeout, error status, an empty or runaway answer) returns
None and the caller searches the follow-up with its conversation, so a slow model costs at most the
timeout. Whether to call at all is decided offline first (``knowledge.questions``): a question that names
its own topic is never rewritten, so a topic change is never pulled back to the old topic.

A question written in another language than the bot's knowledge (even a first one) is rewritten into the
knowledge's language (``language``), so that the full-text search matches the knowledge's words too; the
answer's prompt then tells the model to answer in the visitor's language (``chatbots.llm.prompt``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings

from chatbots.llm.endpoints import endpoints_for, get_client
from chatbots.llm.errors import redact
from chatbots.llm.events import Usage
from chatbots.llm.presets import sampling_params
from chatbots.llm.pricing import estimate_cost

if TYPE_CHECKING:
    from chatbots.models import Bot

logger = logging.getLogger(__name__)

# The first words of the instruction; the local test server (chatbots.llm.testserver) recognises a rewrite
# request by them.
REWRITE_INSTRUCTION = "Rewrite the user's last message as one standalone search question"
REWRITE_SYSTEM = (
    f"{REWRITE_INSTRUCTION}, using the earlier messages only to resolve what it refers to. If the last "
    "message moves to another topic, keep its new topic. {language} Reply with the question only."
)
KEEP_LANGUAGE = "Keep its language."
# A visitor who writes in another language than the knowledge: the search runs in the knowledge's language
# (full-text search stems words in that language; the embedder also matches same-language text best).
WRITE_IN_LANGUAGE = "Write the question in {name}, the language of the knowledge it is searched in."
MAX_REWRITE_CHARS = 500  # a longer answer is not a question: the model did something else


@dataclass(frozen=True)
class Rewrite:
    text: str
    model: str
    usage: Usage
    cost_usd: Decimal | None


def rewrites_queries(bot: Bot) -> bool:
    """Whether follow-ups of this bot are rewritten: the bot's setting, and a model to ask (not offline)."""
    return bot.query_rewrite and bool(endpoints_for(bot))


def rewrite_prompt(*, question: str, earlier: Sequence[str], language: str = "") -> list[dict[str, str]]:
    """The two messages of a rewrite request: the instruction, then the user's turns, numbered.
    ``language``: the knowledge's language (a text search configuration name) to write the question in."""
    rule = WRITE_IN_LANGUAGE.format(name=language_name(language)) if language else KEEP_LANGUAGE
    turns = "\n".join(f"{number}. {text}" for number, text in enumerate(earlier, start=1))
    asked = (
        f"Earlier messages:\n{turns}\n\nLast message: {question}" if earlier else f"Last message: {question}"
    )
    return [
        {"role": "system", "content": REWRITE_SYSTEM.format(language=rule)},
        {"role": "user", "content": asked},
    ]


def language_name(config: str) -> str:
    """A text search configuration's language as a model reads it ("spanish" → "Spanish")."""
    return config.capitalize()


async def rewrite_question(
    *, bot: Bot, question: str, earlier: Sequence[str], language: str = ""
) -> Rewrite | None:
    """``question`` rewritten to stand on its own given the user's ``earlier`` messages (and written in
    ``language``, the knowledge's, when given), or None when the model did not answer usably within
    ``LLM_REWRITE_TIMEOUT``."""
    endpoints = endpoints_for(bot)
    if not endpoints or not (earlier or language):
        return None
    endpoint = endpoints[0]
    body = {
        "messages": rewrite_prompt(question=question, earlier=earlier, language=language),
        **sampling_params(
            provider=endpoint.provider,
            model=endpoint.model,
            temperature=0.0,
            max_tokens=settings.LLM_REWRITE_MAX_TOKENS,
        ),
    }
    try:
        async with asyncio.timeout(settings.LLM_REWRITE_TIMEOUT):
            # As for answers, the body goes in ``extra_body`` (sent as given; no SDK transform of messages).
            response = await get_client(endpoint).chat.completions.create(
                model=endpoint.model, messages=[], stream=False, extra_body=body
            )
    except TimeoutError:
        logger.warning(
            "Query rewrite timed out bot=%s after %.1fs", bot.public_id, settings.LLM_REWRITE_TIMEOUT
        )
        return None
    except Exception as exc:  # any failure of the call: the conversational search takes over
        logger.warning("Query rewrite failed bot=%s: %s", bot.public_id, redact(str(exc), [endpoint.api_key]))
        return None
    choices = getattr(response, "choices", None) or []
    text = (choices[0].message.content or "").strip() if choices and choices[0].message else ""
    text = " ".join(text.split()).strip("\"'“”")
    if not text or len(text) > MAX_REWRITE_CHARS:
        return None
    usage = Usage(
        prompt_tokens=getattr(response.usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(response.usage, "completion_tokens", 0) or 0,
    )
    model = getattr(response, "model", None) or endpoint.model
    return Rewrite(text=text, model=model, usage=usage, cost_usd=estimate_cost(model, usage))
