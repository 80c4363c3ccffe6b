"""What chat needs from knowledge, in one read: an FAQ answer, or ranked passages with their sources.

The chat pipeline, the evaluation commands and the API call ``knowledge_for_question``; nothing outside
this app reads chunks or FAQ pairs. Knowledge serves a set of source ids and does not know who asks
(which sources a bot answers from is owned by ``chatbots``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from pgvector.django import CosineDistance

from knowledge.embedders import (
    QueryVector,
    embed_search_query,
    faq_min_similarity,
    judges_language,
    query_vector_for,
    serving_model_name,
)
from knowledge.embedders import (
    min_relevance as model_min_relevance,
)
from knowledge.models import FaqPair, Source, SourceStatus, Transcription, timestamp
from knowledge.questions import QuestionShape, question_shape
from knowledge.retrieval import RetrievedChunk, hybrid_search

SNIPPET_CHARS = 280


class SourcePayload(TypedDict):
    """A source as visitors and API clients see it under an answer (stored with the message)."""

    source_id: int
    title: str
    url: str | None
    page: int | None
    snippet: str
    # Audio and video: where the passage starts (seconds) and that moment as mm:ss; ``url`` then links to
    # it (``#t=``) when the recording has an address.
    start: float | None
    timestamp: str | None


def snippet_of(text: str) -> str:
    """A passage's first ``SNIPPET_CHARS`` characters on one line, with an ellipsis when cut."""
    flat = " ".join(text.split())
    return flat[:SNIPPET_CHARS] + ("…" if len(flat) > SNIPPET_CHARS else "")


@dataclass(frozen=True)
class FaqAnswer:
    question: str
    answer: str
    source_id: int
    score: float
    pair_id: int | None = None  # counted by knowledge.services.faq_pair_count_answer once answered

    def as_source(self) -> SourcePayload:
        return {"source_id": self.source_id, "title": self.question, "url": None, "page": None,
                "snippet": snippet_of(self.answer), "start": None, "timestamp": None}  # fmt: skip


def media_link(url: str | None, start: float | None) -> str | None:
    """A recording's address opened at ``start`` (a W3C media fragment, ``#t=252``)."""
    if not url or start is None:
        return url
    return f"{url.split('#', 1)[0]}#t={int(start)}"


def passage_source(chunk: RetrievedChunk) -> SourcePayload:
    return {"source_id": chunk.source_id, "title": chunk.source_title, "url": media_link(chunk.url, chunk.start),
            "page": chunk.page, "snippet": snippet_of(chunk.content), "start": chunk.start,
            "timestamp": timestamp(chunk.start) if chunk.start is not None else None}  # fmt: skip


@dataclass(frozen=True)
class Knowledge:
    """What an answer is built from: a matching FAQ (then no passages), or the retrieved passages.
    ``sources`` lists each (source, page) once, best first."""

    faq: FaqAnswer | None
    passages: list[RetrievedChunk]
    sources: list[SourcePayload]
    # What was searched: the question, or (a follow-up) the earlier messages' words with it. Stored with
    # the answer so a transcript shows it.
    search_query: str = ""


def knowledge_for_question(
    *,
    organization_id: int,
    source_ids: list[int],
    question: str,
    top_k: int,
    context: Sequence[str] = (),
    min_relevance: float | None = None,
    query_vector: QueryVector = None,
) -> Knowledge:
    """An FAQ pair of these sources that answers ``question`` directly, else their best passages.

    ``context``: the user's earlier messages in the conversation, oldest first; a follow-up ("and for how
    long?") is searched with them. ``min_relevance``: passages less relevant than this are not knowledge
    about the question (default: the embedding model's measured threshold, a lower one for a question in
    another language than English); none left means the knowledge does not cover it. A
    question that names its own topic (``knowledge.questions``) is judged without its conversation. ``query_vector``: the question's vector, or a future of it (the chat pipeline starts
    embedding the question as soon as the message arrives; the full-text search starts without it)."""
    faq = faq_match(
        organization_id=organization_id, source_ids=source_ids, question=question, query_vector=query_vector
    )
    if faq is not None:
        return Knowledge(faq=faq, passages=[], sources=[faq.as_source()], search_query=question)
    model = serving_model_name()
    shape: QuestionShape | None = None
    if context or (min_relevance is None and judges_language(model)):
        shape = question_shape(question)
    # A question that names its own topic is judged on its own words: its conversation still helps to rank
    # (a self-contained-looking follow-up, "what if the next box already locked?"), but must not make an
    # unrelated question look covered ("thanks! and a banana bread recipe?" after a covered one).
    judge = None
    if shape is not None and shape.self_contained and context:
        judge = query_vector_for(question, query_vector)
    if min_relevance is not None:
        threshold = min_relevance
    else:
        threshold = model_min_relevance(model, english=shape.english if shape is not None else True)
    query, vector = conversational_query(question=question, context=context, query_vector=query_vector)
    passages = hybrid_search(
        organization_id=organization_id, source_ids=source_ids, query=query, top_k=top_k, query_vector=vector,
        judge_vector=judge,
    )  # fmt: skip
    passages = [passage for passage in passages if passage.similarity >= threshold]
    seen: set[tuple[int, int | None, float | None]] = set()
    sources = []
    for chunk in passages:
        if (chunk.source_id, chunk.page, chunk.start) not in seen:
            seen.add((chunk.source_id, chunk.page, chunk.start))
            sources.append(passage_source(chunk))
    return Knowledge(faq=None, passages=passages, sources=sources, search_query=query)


CONTEXT_TURNS = 2  # earlier user messages a follow-up is searched with
CONTEXT_WEIGHT = 0.5  # an earlier message's weight in the query vector, against the question's 1


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


def conversational_query(
    *, question: str, context: Sequence[str], query_vector: QueryVector = None
) -> tuple[str, QueryVector]:
    """The text and vector a message is searched with, given the user's earlier messages.

    A follow-up ("and for how long max?") names nothing; the question it continues does. The earlier
    two messages are added to the question's vector at half its weight each, and their words join the
    full-text query: the conversation's topic ranks first while the new question still leads, so a question
    that changes the topic, carrying its own words and most of the vector, is not pulled back (measured on
    conversations-lumen, BENCHMARKS.md). No model call: the earlier messages' vectors were computed (and
    cached) when they were asked."""
    earlier = [turn.strip() for turn in context if turn and turn.strip()][-CONTEXT_TURNS:]
    if not earlier:
        return question, query_vector
    vector = query_vector_for(question, query_vector)
    for turn in earlier:
        vector = [
            mine + CONTEXT_WEIGHT * theirs
            for mine, theirs in zip(vector, embed_search_query(turn), strict=True)
        ]
    return " ".join([*earlier, question]), _unit(vector)


# Neither a letter or digit (str.isalnum) nor white space: ``\w`` is isalnum plus "_", so "_" goes too.
_NOT_WORD_OR_SPACE = re.compile(r"[^\w\s]|_")


def _normalise(text: str) -> str:
    # One regular expression rather than a test per character: the dashboard normalises thousands of
    # questions a page (chatbots.question_groups).
    return " ".join(_NOT_WORD_OR_SPACE.sub("", text.lower()).split())


def faq_question_key(text: str) -> str:
    """A question as FAQ matching compares it: case, punctuation and spacing do not count."""
    return _normalise(text)


def faq_pairs_by_origin(*, organization_id: int, message_ids: list[int]) -> dict[int, FaqPair]:
    """The FAQ pairs that correct these chat messages, by message id (the newest per message; one query)."""
    pairs = FaqPair.objects.filter(organization_id=organization_id, origin_message_id__in=message_ids)
    return {pair.origin_message_id: pair for pair in pairs.select_related("source").order_by("pk")}


def faq_match(
    *, organization_id: int, source_ids: list[int], question: str, query_vector: QueryVector = None
) -> FaqAnswer | None:
    """The FAQ answer whose question matches ``question`` closely enough to answer directly, if any:
    the same question written differently (case, punctuation), or one whose embedding is close enough."""
    question = (question or "").strip()
    if not question or not source_ids:
        return None
    pairs = FaqPair.objects.filter(
        organization_id=organization_id, source_id__in=source_ids, source__status=SourceStatus.READY
    )
    # One query tells both whether these sources hold FAQs at all (most bots' do not) and the exact match.
    # Newest first: the latest correction of a question ("improve this answer") wins over an older pair.
    candidates = list(pairs.order_by("-pk").values_list("question", "answer", "source_id", "pk"))
    if not candidates:
        return None
    wanted = _normalise(question)
    for pair_question, answer, source_id, pair_id in candidates:
        if _normalise(pair_question) == wanted:
            return FaqAnswer(
                question=pair_question, answer=answer, source_id=source_id, score=1.0, pair_id=pair_id
            )
    model = serving_model_name()
    vector = query_vector_for(question, query_vector)
    best = (
        pairs.filter(embedding_model=model, embedding__isnull=False)
        .annotate(distance=CosineDistance("embedding", vector))
        .order_by("distance", "-pk")
        .values_list("question", "answer", "source_id", "distance", "pk")
        .first()
    )
    if best is None:
        return None
    similarity = 1.0 - float(best[3])
    if similarity < faq_min_similarity(model):
        return None
    return FaqAnswer(
        question=best[0], answer=best[1], source_id=best[2], score=round(similarity, 4), pair_id=best[4]
    )


def source_latest_transcription(*, source: Source) -> Transcription | None:
    """The transcript a recording's chunks were made from (the newest), for the admin."""
    return source.transcriptions.order_by("-created_at").first() if source.pk else None


def knowledge_language(*, organization_id: int, source_ids: Sequence[int]) -> str:
    """The language most of these sources' text is written in (a configuration of
    ``knowledge.questions.TEXT_SEARCH_LANGUAGES``, told at ingest), or "" when none is known: what a
    question in another language is translated into before it is searched."""
    from django.db.models import Sum

    from knowledge.questions import TEXT_SEARCH_LANGUAGES

    row = (
        Source.objects.filter(
            organization_id=organization_id,
            pk__in=list(source_ids),
            status=SourceStatus.READY,
            text_search_config__in=TEXT_SEARCH_LANGUAGES,
        )
        .values("text_search_config")
        .annotate(chunks=Sum("chunk_count"))
        .order_by("-chunks", "text_search_config")
        .first()
    )
    return row["text_search_config"] if row else ""
