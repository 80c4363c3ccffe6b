"""What a visitor's question looks like, told without a model: does it stand on its own, and is it English.

Both decide how a question is searched and judged (``knowledge.selectors.knowledge_for_question``) and
whether a bot's model is asked to rewrite it (``chatbots.llm.rewrite``). They are cheap on purpose: a
regular expression, and one statement over PostgreSQL's own stop-word lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection

# A follow-up points back at the conversation: a pronoun or a deictic word ("it", "there", "the first
# one"), or it opens by continuing the previous turn ("and to France?", "what about E5?", "ok, and…",
# "going back to…"). "tht"/"dat" are how "that" is often typed in a chat. Only English is recognised:
# a question in another language is never taken for self-contained (it keeps its conversation).
REFERENCE = re.compile(
    r"\b(it|its|it's|itself|that|this|these|those|they|them|their|theirs|there|one|ones|same|such|"
    r"former|latter|first|second|last|other|another|else|again|tht|dat)\b",
    re.IGNORECASE,
)
CONTINUATION = re.compile(
    r"^\W*(and|also|or|but|so|then|plus|instead|ok|okay|actually|what about|how about|same|going back|back to)\b",
    re.IGNORECASE,
)
# Fewer content words than this ("fridge ok?", "is there a minimum?") cannot name their own topic.
MIN_CONTENT_WORDS = 3
# The languages whose stop words PostgreSQL ships and visitors of a European shop most often write in.
OTHER_LANGUAGES = ("french", "italian", "spanish", "german", "portuguese", "dutch")
# The text search configurations a source's language is told among (also its name in prompts).
TEXT_SEARCH_LANGUAGES = ("english", *OTHER_LANGUAGES)
LANGUAGE_CODES = {
    "english": "en", "french": "fr", "italian": "it", "spanish": "es", "german": "de", "portuguese": "pt",
    "dutch": "nl",
}  # fmt: skip
SAMPLE_CHARS = 20_000  # of a source's text: plenty for the stop-word test, cheap to parse


@dataclass(frozen=True)
class QuestionShape:
    english: bool  # reads as English (the stop-word test below)
    self_contained: bool  # names its own topic: its conversation must not change what is searched
    language: str = "english"  # the text search configuration whose stop words it holds most of


def _stop_words_dropped(text: str) -> tuple[int, dict[str, int]]:
    """The text's token count, and per configuration of ``TEXT_SEARCH_LANGUAGES`` how many it drops as stop
    words (one statement with PostgreSQL's own lists)."""
    kept = ", ".join(
        f"(SELECT coalesce(sum(cardinality(positions)), 0) FROM unnest(to_tsvector('{config}', %(q)s)))"  # noqa: S608
        for config in ("simple", *TEXT_SEARCH_LANGUAGES)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {kept}", {"q": text})
        total, *counts = (int(value) for value in cursor.fetchone())
    return total, {config: total - count for config, count in zip(TEXT_SEARCH_LANGUAGES, counts, strict=True)}


def _language_of(dropped: dict[str, int]) -> str:
    """The configuration that drops the most stop words; English on a tie (and for a text without any)."""
    return max(TEXT_SEARCH_LANGUAGES, key=lambda config: (dropped[config], config == "english"))


def text_language(text: str) -> str:
    """The text search configuration (a language of ``TEXT_SEARCH_LANGUAGES``) a text is written in, by
    the same stop-word test as questions; judged on its first ``SAMPLE_CHARS`` characters."""
    return _language_of(_stop_words_dropped(text[:SAMPLE_CHARS])[1]) if text.strip() else "english"


def question_shape(question: str) -> QuestionShape:
    """How ``question`` is searched and judged, in one statement.

    English: it holds at least as many English stop words as those of any language in ``OTHER_LANGUAGES``
    (the classic stop-word test, with PostgreSQL's lists; a question without any stop word counts as
    English). A stop word is what a configuration drops, so the tokens each one keeps are counted.

    Self-contained: English, no word that points back at the conversation, and at least
    ``MIN_CONTENT_WORDS`` words that are not stop words. Measured on conversations-lumen (BENCHMARKS.md):
    every unrelated, self-contained last turn is recognised; the few elliptical follow-ups it misses
    ("what happens if we pay late?") are then searched alone."""
    question = question.strip()
    if not question:
        return QuestionShape(english=True, self_contained=False)
    total, dropped = _stop_words_dropped(question)
    language = _language_of(dropped)
    english = language == "english"
    content_words = total - dropped["english"]
    points_back = bool(REFERENCE.search(question) or CONTINUATION.search(question))
    return QuestionShape(
        english=english,
        self_contained=english and not points_back and content_words >= MIN_CONTENT_WORDS,
        language=language,
    )
