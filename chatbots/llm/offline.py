"""The offline extractive provider: answers by quoting the retrieved passages, no model needed.

It is the embedded default when no provider key is configured anywhere, and the last resort when every
configured model fails. It says plainly that no language model is connected.

An answer quotes the sentences that match the question best, not whole chunks: a sentence is chosen by
its similarity to the question (``RetrievedChunk.sentence_similarities``, computed by the search from the
stored sentence vectors, so choosing costs no embedding), with shared words breaking near-ties and
standing in where a passage has no sentence vectors. A passage nearly identical to a better-ranked one
(the same page crawled twice, a PDF and its web copy) is left out, and so is one whose best sentence is
less similar than the first quote's by more than ``PASSAGE_MARGIN``. ``Completed.used_passages`` lists the passages quoted, so the
answer cites only those.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from chatbots.llm.events import Completed, LLMEvent, Passage, TextDelta, Usage
from chatbots.llm.prompt import source_label
from knowledge.chunking import passage_sentences

if TYPE_CHECKING:
    from chatbots.models import Bot

OFFLINE_PROVIDER = "offline"
OFFLINE_MODEL = "extractive"
MAX_PASSAGES = 3
QUOTE_CHARS = 320  # per passage: the best sentence, and the next best ones while they fit
MAX_SENTENCES = 3
# A passage whose best sentence is this much less similar to the question than the first quoted one's
# is not quoted, nor cited. On the Lumen help-centre set (BENCHMARKS.md "Offline answers") 0.05 cites
# the article that answers in 65 of 70 questions and 54 other articles, against 66 and 93 without a cut.
PASSAGE_MARGIN = 0.05
# Within a passage, a further sentence joins the quote if it is about as similar as the best one.
SENTENCE_MARGIN = 0.08
LEXICAL_SHARE = 0.1  # shared words: a small bonus to the similarity (a tie-break), or all there is
# Word 3-shingles: when this share of the smaller passage's are in the other, they are copies of one text
# (also when the copies were cut into chunks at other places, so that one chunk holds most of the other).
DUPLICATE_OVERLAP = 0.8
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


_WORD = re.compile(r"\w+")
_CONTINUES = re.compile(r"(It|Its|This|That|These|Those|They|Their|Then|There)\b")


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    if len(words) < 3:
        return {tuple(words)}
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def _overlap(a: set, b: set) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


def distinct_passages(passages: Sequence[Passage]) -> list[Passage]:
    """``passages`` (best first) without those nearly identical to a better-ranked one: the same page
    crawled twice, a PDF and its web copy, a page reached under two addresses. Compared by their words
    (3-word shingles, ``DUPLICATE_OVERLAP`` of the smaller one's in the other), so case, spacing and
    punctuation do not matter."""
    kept: list[tuple[Passage, set]] = []
    for passage in passages:
        shingles = _shingles(passage.content)
        if all(_overlap(shingles, other) < DUPLICATE_OVERLAP for _, other in kept):
            kept.append((passage, shingles))
    return [passage for passage, _ in kept]


@dataclass(frozen=True)
class Quote:
    passage: Passage
    text: str
    sentences: tuple[str, ...]  # those quoted, in their order
    similarity: float | None  # of its best sentence to the question (None: no vectors to tell)


def _normalised(sentence: str) -> str:
    return " ".join(_WORD.findall(sentence.lower()))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def quote_of(passage: Passage, question: str, *, skip: Collection[str] = ()) -> Quote | None:
    """The passage's sentences that match ``question`` best, in their order (``…`` where others were
    left out), within ``QUOTE_CHARS``; sentences in ``skip`` (already quoted) are not repeated."""
    sentences = passage_sentences(passage.content) or [" ".join(passage.content.split())]
    similarities = tuple(getattr(passage, "sentence_similarities", ()) or ())
    aligned = len(similarities) == len(sentences)  # else: one for the whole passage, or stale vectors
    terms = _terms(question)
    scores = []
    for index, sentence in enumerate(sentences):
        overlap = len(terms & _terms(sentence)) / len(terms) if terms else 0.0
        scores.append(similarities[index] + LEXICAL_SHARE * overlap if aligned else overlap)
    order = [i for i in sorted(range(len(sentences)), key=lambda i: -scores[i])
             if _normalised(sentences[i]) not in skip and sentences[i].strip()]  # fmt: skip
    if not order:
        return None
    best = order[0]
    chosen = [best]
    length = min(len(sentences[best]), QUOTE_CHARS)
    following = best + 1
    if following < len(sentences) and (
        sentences[best].rstrip().endswith(":") or _CONTINUES.match(sentences[following])
    ):
        # A lead-in ("In the app:") is quoted with what it leads to, and a sentence that refers back
        # ("It is one script tag.") with the sentence it refers to.
        order.insert(1, following)
        scores[following] = max(scores[following], scores[best])
    for index in order[1:]:
        if len(chosen) >= MAX_SENTENCES or scores[index] < scores[best] - SENTENCE_MARGIN:
            break
        if index in chosen or (sentences[index].rstrip().endswith(":") and index + 1 not in chosen):
            continue  # a lead-in without what it leads to says nothing
        if length + len(sentences[index]) + 3 <= QUOTE_CHARS:
            chosen.append(index)
            length += len(sentences[index]) + 3
    chosen.sort()
    text = ""
    for position, index in enumerate(chosen):
        if position:
            text += " " if index == chosen[position - 1] + 1 else " … "
        text += _clip(sentences[index].strip(), QUOTE_CHARS)
    if aligned:
        similarity: float | None = similarities[best]
    else:
        similarity = max(similarities) if similarities else None
    quoted = tuple(sentences[index] for index in chosen)
    return Quote(passage=passage, text=text, sentences=quoted, similarity=similarity)


def choose_quotes(question: str, passages: Sequence[Passage], *, limit: int = MAX_PASSAGES) -> list[Quote]:
    """What an offline answer quotes: the best sentences of up to ``limit`` distinct passages, best
    passage first; a passage far less similar to the question than the best one is left out."""
    quotes: list[Quote] = []
    # Overlapping chunks (and copies cut elsewhere) share sentences: a sentence of a passage already
    # quoted is not quoted again from another.
    seen: set[str] = set()
    for passage in distinct_passages(passages):
        if len(quotes) >= limit:
            break
        quote = quote_of(passage, question, skip=seen)
        if quote is None:
            continue
        top = quotes[0].similarity if quotes else None
        if top is not None and quote.similarity is not None and quote.similarity < top - PASSAGE_MARGIN:
            continue
        quotes.append(quote)
        sentences = passage_sentences(passage.content) or [passage.content]
        seen.update(_normalised(sentence) for sentence in sentences)
    return quotes


@dataclass(frozen=True)
class OfflineAnswer:
    text: str
    used_passages: tuple[int, ...]  # chunk ids of the passages quoted, in the answer's order


def compose(
    *, bot: Bot, question: str, passages: Sequence[Passage], after_failure: bool = False
) -> OfflineAnswer:
    if not passages:
        reply = (bot.fallback_reply or "").strip() or NOTHING_FOUND
        if after_failure:
            text = f"{reply}\n\n(The language model is not reachable right now; please try again later.)"
        else:
            text = f"{reply}\n\n(No language model is connected; I can only answer from the knowledge base.)"
        return OfflineAnswer(text=text, used_passages=())
    parts = [NOTICE_AFTER_FAILURE if after_failure else NOTICE]
    quotes = choose_quotes(question, passages)
    for number, quote in enumerate(quotes, start=1):
        parts.append(f"[{number}] {quote.text}\n— Source: {source_label(quote.passage)}")
    return OfflineAnswer(
        text="\n\n".join(parts), used_passages=tuple(quote.passage.chunk_id for quote in quotes)
    )


def compose_answer(
    *, bot: Bot, question: str, passages: Sequence[Passage], after_failure: bool = False
) -> str:
    return compose(bot=bot, question=question, passages=passages, after_failure=after_failure).text


async def offline_stream(
    *, bot: Bot, question: str, passages: Sequence[Passage], after_failure: bool = False
) -> AsyncIterator[LLMEvent]:
    answer = compose(bot=bot, question=question, passages=passages, after_failure=after_failure)
    pieces = re.findall(r"\S+\s*", answer.text)
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
        used_passages=answer.used_passages,
    )
