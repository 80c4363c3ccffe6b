"""A question's shape decides how it is searched and judged: a follow-up keeps its conversation, a question
that names its own topic is judged on its own words, and an English-only embedder's scale is not applied to
questions in other languages. Real PostgreSQL stop-word lists, real embedder."""

from __future__ import annotations

import pytest

from knowledge.embedders import MIN_RELEVANCE, MIN_RELEVANCE_OTHER_LANGUAGES, min_relevance
from knowledge.models import SourceKind
from knowledge.questions import question_shape
from knowledge.selectors import knowledge_for_question
from knowledge.services import source_ingest
from knowledge.tests.factories import make_organization, make_source

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "question",
    [
        "Do you ship espresso machines to PO boxes?",
        "How do I delete my personal account?",
        "thanks! unrelated, but do you have a good banana bread recipe?",
    ],
)
def test_a_question_that_names_its_topic_is_self_contained(question):
    shape = question_shape(question)
    assert shape.english and shape.self_contained


@pytest.mark.parametrize(
    "question",
    [
        "and for how long max?",
        "How long does that take?",
        "what about E5?",
        "fridge ok?",
        "ok cool. also can you recommend a laptop?",
        "going back to the return, who pays for the label?",
        "is there a minimum?",
    ],
)
def test_a_follow_up_is_not_self_contained(question):
    assert not question_shape(question).self_contained


@pytest.mark.parametrize(
    "question",
    [
        "et pendant combien de temps max ?",
        "e la macchina è inclusa?",
        "¿cuánto tiempo tarda el reembolso de mi pedido?",
        "Wie lange dauert die Lieferung nach Österreich?",
    ],
)
def test_questions_in_other_languages_are_told_apart(question):
    shape = question_shape(question)
    assert not shape.english and not shape.self_contained


def test_an_english_only_embedder_judges_other_languages_on_a_lower_bar(settings):
    settings.KNOWLEDGE_MIN_RELEVANCE = None
    for model, lower in MIN_RELEVANCE_OTHER_LANGUAGES.items():
        assert min_relevance(model, english=False) == lower < min_relevance(model) == MIN_RELEVANCE[model]
    settings.KNOWLEDGE_MIN_RELEVANCE = 0.5  # an operator's threshold applies to every language
    assert all(min_relevance(model, english=False) == 0.5 for model in MIN_RELEVANCE_OTHER_LANGUAGES)


def test_an_unrelated_question_after_a_covered_one_is_judged_on_its_own_words():
    org = make_organization()
    source = make_source(
        organization=org, kind=SourceKind.TEXT, title="Skipping a delivery",
        text="To skip your next coffee delivery, open Deliveries in the app and tap Skip before the lock time. "
        "You can skip up to three deliveries in a row.",
    )  # fmt: skip
    source_ingest(source_id=source.pk)

    def ask(question: str, context: list[str]):
        return knowledge_for_question(
            organization_id=org.pk, source_ids=[source.pk], question=question, context=context, top_k=3
        )

    covered = ask("how do I skip my next delivery?", [])
    assert covered.passages
    follow_up = ask("is there a limit on how many I can skip?", ["how do I skip my next delivery?"])
    assert follow_up.passages and follow_up.search_query.startswith("how do I skip")
    unrelated = ask("thanks! do you have a good banana bread recipe?", ["how do I skip my next delivery?"])
    assert unrelated.passages == [] and unrelated.sources == []
