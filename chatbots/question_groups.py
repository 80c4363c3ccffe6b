"""Visitors' questions grouped by meaning: the review queue (answers that need attention) and the admin
dashboard's top questions read them through the one grouping here, ``group_similar_questions``.

A question's vector is the one retrieval computed when it was asked (``Message.question_embedding``), so
grouping costs no embedder call. Two questions are "the same" at the similarity at which an FAQ pair
answers a paraphrase (``faq_min_similarity``): a group is what one improved answer would fix.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from chatbots.models import Feedback, Message, MessageRole, MessageStatus
from chatbots.selectors import unanswered_q
from knowledge.embedders import faq_min_similarity, min_relevance, serving_model_name
from knowledge.selectors import faq_question_key

# Why an answer is in the review queue, in the order the queue shows them.
REASONS = {
    "thumbs_down": "Thumbs down",
    "unanswered": "Unanswered",
    "low_score": "Weak sources",
    "failed": "Provider failure",
}


@dataclass(frozen=True)
class QuestionItem:
    """One visitor question (and, in the review queue, the answer it got)."""

    question: str
    conversation_id: uuid.UUID
    asked_at: datetime
    vector: Any = None  # the question's embedding (numpy array or list), None when none was stored
    question_id: int | None = None
    answer_id: int | None = None
    reasons: tuple[str, ...] = ()


@dataclass
class QuestionGroup:
    """Questions that mean the same, newest first; ``question`` is the newest wording."""

    items: list[QuestionItem] = field(default_factory=list)

    @property
    def question(self) -> str:
        return self.items[0].question

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def latest_at(self) -> datetime:
        return self.items[0].asked_at

    @property
    def reasons(self) -> list[tuple[str, int]]:
        """(label, how many) of the reasons its answers need attention, in ``REASONS`` order."""
        counts = Counter(reason for item in self.items for reason in item.reasons)
        return [(label, counts[key]) for key, label in REASONS.items() if counts[key]]

    @property
    def answer_ids(self) -> list[int]:
        return [item.answer_id for item in self.items if item.answer_id is not None]


def _unit(vector: Any) -> np.ndarray | None:
    if vector is None:
        return None
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm else None


def group_similar_questions(
    items: Sequence[QuestionItem], *, min_similarity: float | None = None
) -> list[QuestionGroup]:
    """``items`` (newest first) in groups of similar questions, the most frequent first (then the most
    recent). A question joins the first group whose first question is at least ``min_similarity`` alike
    (cosine; default: the serving model's FAQ paraphrase threshold) or is the same text ignoring case and
    punctuation (questions stored without a vector group by text only).

    Greedy, in one pass: each question is compared with one vector per group (a matrix product), so a
    few thousand questions group in milliseconds; groups do not merge afterwards, which is what a reader
    expects of "similar to this question"."""
    threshold = faq_min_similarity(serving_model_name()) if min_similarity is None else min_similarity
    groups: list[QuestionGroup] = []
    by_text: dict[str, QuestionGroup] = {}
    leaders: np.ndarray | None = None  # one unit vector per group that has one, rows [0, n_leaders)
    leader_groups: list[QuestionGroup] = []
    for item in items:
        key = faq_question_key(item.question)
        group = by_text.get(key)  # the same wording again: no vector needed
        if group is None:
            unit = _unit(item.vector)
            if unit is not None and leader_groups:
                scores = leaders[: len(leader_groups)] @ unit
                best = int(np.argmax(scores))
                if float(scores[best]) >= threshold:
                    group = leader_groups[best]
            if group is None:
                group = QuestionGroup()
                groups.append(group)
                if unit is not None:
                    if leaders is None or len(leader_groups) == len(leaders):
                        grown = np.zeros((max(64, 2 * len(leader_groups)), unit.shape[0]), dtype=np.float32)
                        if leaders is not None:
                            grown[: len(leaders)] = leaders
                        leaders = grown
                    leaders[len(leader_groups)] = unit
                    leader_groups.append(group)
            by_text[key] = group
        group.items.append(item)
    return sorted(groups, key=lambda g: (-g.count, -g.latest_at.timestamp()))


# --- the review queue ----------------------------------------------------------------------------
def low_score_threshold() -> float:
    """The relevance under which an answer's best passage is weak: ``INBOX_LOW_RETRIEVAL_SCORE`` if set,
    else 15% of the way from the serving model's "not covered" threshold to a perfect match (each model
    spreads similarities differently)."""
    if settings.INBOX_LOW_RETRIEVAL_SCORE is not None:
        return settings.INBOX_LOW_RETRIEVAL_SCORE
    floor = min_relevance(serving_model_name())
    return floor + (1.0 - floor) * 0.15


def failure_q() -> Q:
    """Answers the provider failed to give (nothing, or cut off by the provider — not by a visitor who
    left)."""
    return Q(status=MessageStatus.FAILED) | (
        Q(status=MessageStatus.INCOMPLETE) & ~Q(error_code="client_disconnected")
    )


def needs_review_q(*, low_score: float) -> Q:
    """Answers that need someone's attention: rated down, unanswered, weakly sourced, or failed."""
    return Q(role=MessageRole.ASSISTANT) & (
        Q(feedback=Feedback.DOWN) | unanswered_q() | Q(retrieval_score__lt=low_score) | failure_q()
    )


def _reasons(row: dict[str, Any], low_score: float) -> tuple[str, ...]:
    reasons = []
    if row["feedback"] == Feedback.DOWN:
        reasons.append("thumbs_down")
    if row["status"] == MessageStatus.COMPLETE and (
        row["provider"] == "fallback_reply" or row["sources"] == []
    ):
        reasons.append("unanswered")
    if row["retrieval_score"] is not None and row["retrieval_score"] < low_score:
        reasons.append("low_score")
    failed = row["status"] == MessageStatus.FAILED or (
        row["status"] == MessageStatus.INCOMPLETE and row["error_code"] != "client_disconnected"
    )
    if failed:
        reasons.append("failed")
    return tuple(reasons)


def _answers_with_questions(
    answers: QuerySet[Message], *, limit: int, low_score: float
) -> list[QuestionItem]:
    """The newest ``limit`` of ``answers``, each with the visitor's question it replied to (two queries)."""
    question = Message.objects.filter(
        conversation_id=OuterRef("conversation_id"), role=MessageRole.USER, pk__lt=OuterRef("pk")
    ).order_by("-pk")
    rows = list(
        answers.order_by("-created_at", "-pk")
        .annotate(question_id=Subquery(question.values("pk")[:1]))
        .values(
            "pk", "conversation_id", "created_at", "question_id", "feedback", "status", "error_code",
            "provider", "sources", "retrieval_score",
        )[:limit]
    )  # fmt: skip
    questions = {
        q["pk"]: q
        for q in Message.objects.filter(pk__in=[r["question_id"] for r in rows if r["question_id"]]).values(
            "pk", "text", "question_embedding"
        )
    }
    items = []
    for row in rows:
        asked = questions.get(row["question_id"]) or {"text": "", "question_embedding": None}
        items.append(
            QuestionItem(
                question=asked["text"] or "(no question)",
                conversation_id=row["conversation_id"],
                asked_at=row["created_at"],
                vector=asked["question_embedding"],
                question_id=row["question_id"],
                answer_id=row["pk"],
                reasons=_reasons(row, low_score),
            )
        )
    return items


def review_queue(
    answers: QuerySet[Message], *, resolved: bool = False, limit: int | None = None
) -> list[QuestionGroup]:
    """The answers among ``answers`` (already scoped to a tenant) that need attention, grouped by similar
    question, most frequent first: open ones, or with ``resolved`` the ones marked resolved. The newest
    ``limit`` answers are read (``INBOX_REVIEW_QUEUE_LIMIT``): what has gone wrong lately."""
    low_score = low_score_threshold()
    answers = answers.filter(needs_review_q(low_score=low_score), reviewed_at__isnull=not resolved)
    items = _answers_with_questions(
        answers, limit=limit or settings.INBOX_REVIEW_QUEUE_LIMIT, low_score=low_score
    )
    return group_similar_questions(items)


def top_questions(
    messages: QuerySet[Message], *, since: datetime, limit: int | None = None
) -> list[QuestionGroup]:
    """What visitors asked most since ``since`` (the newest ``limit`` questions read), grouped by meaning."""
    rows = (
        messages.filter(role=MessageRole.USER, status=MessageStatus.COMPLETE, created_at__gte=since)
        .order_by("-created_at", "-pk")
        .values("pk", "text", "conversation_id", "created_at", "question_embedding")[
            : limit or settings.INBOX_REVIEW_QUEUE_LIMIT
        ]
    )
    items = [
        QuestionItem(
            question=row["text"],
            conversation_id=row["conversation_id"],
            asked_at=row["created_at"],
            vector=row["question_embedding"],
            question_id=row["pk"],
        )
        for row in rows
    ]
    return group_similar_questions(items)


def top_unanswered_questions(
    messages: QuerySet[Message], *, since: datetime, limit: int | None = None
) -> list[QuestionGroup]:
    """The questions the bot could not answer from its knowledge since ``since``, grouped by meaning."""
    answers = messages.filter(unanswered_q(), created_at__gte=since)
    items = _answers_with_questions(
        answers, limit=limit or settings.INBOX_REVIEW_QUEUE_LIMIT, low_score=low_score_threshold()
    )
    return group_similar_questions(items)


# --- the dashboard's question panels, cached ------------------------------------------------------------
QUESTION_PANELS_DAYS = 30


@dataclass(frozen=True)
class QuestionPanels:
    """What the admin home shows of an organization's questions of the last ``QUESTION_PANELS_DAYS``
    days: the most asked and the most often unanswered, each as (newest wording, how often) pairs."""

    top: list[tuple[str, int]]
    unanswered: list[tuple[str, int]]


def _panels_generation_key(organization_id: int) -> str:
    return f"question-panels:generation:{organization_id}"


def question_panels(*, organization_id: int, shown: int) -> QuestionPanels:
    """The panels for one organization, grouped at most once a ``DASHBOARD_QUESTIONS_CACHE_SECONDS``
    (60 by default: fresh within a minute, like today's figures) instead of on every page load: grouping
    reads and compares up to 2 × ``INBOX_REVIEW_QUEUE_LIMIT`` vectors.

    Only the shown wordings and counts are cached, under a key with the organization's generation:
    ``question_panels_forget`` (erasure, retention, a deleted conversation) moves the generation on, so a
    grouping that read a visitor's questions before they were erased is never shown again."""
    generation = cache.get(_panels_generation_key(organization_id), 0)
    key = f"question-panels:{organization_id}:{generation}:{shown}"
    cached = cache.get(key)
    if cached is not None:
        return QuestionPanels(top=cached["top"], unanswered=cached["unanswered"])
    since = timezone.now() - timedelta(days=QUESTION_PANELS_DAYS)
    messages = Message.objects.filter(organization_id=organization_id)
    panels = QuestionPanels(
        top=[(g.question, g.count) for g in top_questions(messages, since=since)[:shown]],
        unanswered=[(g.question, g.count) for g in top_unanswered_questions(messages, since=since)[:shown]],
    )
    if settings.DASHBOARD_QUESTIONS_CACHE_SECONDS > 0:
        cache.set(
            key, {"top": panels.top, "unanswered": panels.unanswered},
            timeout=settings.DASHBOARD_QUESTIONS_CACHE_SECONDS,
        )  # fmt: skip
    return panels


def question_panels_forget(*, organization_id: int) -> None:
    """Questions of the organization were deleted: the cached panels must not show them any more."""
    key = _panels_generation_key(organization_id)
    try:
        cache.incr(key)
    except ValueError:  # no generation yet
        cache.set(key, 1, timeout=None)
