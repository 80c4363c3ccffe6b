"""The optional reranking endpoint, against a local server that speaks the /rerank protocol."""

from __future__ import annotations

import logging

import pytest

from knowledge import reranking
from knowledge.models import SourceKind
from knowledge.retrieval import hybrid_search
from knowledge.services import source_ingest
from knowledge.testing import Reranker, serve_reranker
from knowledge.tests.factories import make_organization, make_source

pytestmark = pytest.mark.django_db
QUESTION = "Which boots keep my feet dry?"
TEXTS = {
    "Waterproof boots": "Our waterproof boots keep feet dry in rain and snow.",
    "Boot care": "Dry wet boots slowly, away from the heater, and wax the leather.",
    "Lake trips": "Boots for the lake: sandals dry fastest after a day at the lake shore.",
}


@pytest.fixture(autouse=True)
def fresh_reranker_state():
    reranking.forget_failures()
    yield
    reranking.forget_failures()


@pytest.fixture
def shop():
    org = make_organization()
    sources = {}
    for title, text in TEXTS.items():
        source = make_source(organization=org, kind=SourceKind.TEXT, title=title, text=text)
        assert source_ingest(source_id=source.pk).status == "ready"
        sources[title] = source.pk
    return org, sources


def search(shop) -> list[int]:
    org, sources = shop
    return [
        hit.source_id
        for hit in hybrid_search(organization_id=org.pk, source_ids=list(sources.values()), query=QUESTION)
    ]


def use(settings, reranker: Reranker, **extra) -> None:
    settings.KNOWLEDGE_RERANK_URL = reranker.base
    settings.KNOWLEDGE_RERANK_TIMEOUT = 0.5
    for name, value in extra.items():
        setattr(settings, name, value)


def test_reranking_is_off_by_default(settings, shop):
    assert settings.KNOWLEDGE_RERANK_URL == ""
    with serve_reranker(Reranker(favourite="lake")) as reranker:
        search(shop)
    assert reranker.requests == []


def test_reranker_reorders_the_fused_candidates(settings, shop):
    fused = search(shop)
    lake = shop[1]["Lake trips"]
    assert fused[0] != lake  # the fused order does not put the lake page first ...
    with serve_reranker(Reranker(favourite="lake")) as reranker:
        use(
            settings,
            reranker,
            KNOWLEDGE_RERANK_MODEL="bge-reranker-v2-m3",
            KNOWLEDGE_RERANK_API_KEY="rk-secret",
        )
        reranked = search(shop)
    assert reranked[0] == lake  # ... the reranker does
    assert sorted(reranked) == sorted(fused)
    ((path, body, headers),) = reranker.requests
    assert path == "/v1/rerank" and body["query"] == QUESTION and body["model"] == "bge-reranker-v2-m3"
    assert headers["Authorization"] == "Bearer rk-secret"


def test_reranker_sees_only_the_configured_number_of_best_fused_candidates(settings, shop):
    org, sources = shop
    fused = search(shop)
    with serve_reranker(Reranker(favourite="lake")) as reranker:
        use(settings, reranker, KNOWLEDGE_RERANK_CANDIDATES=2)
        hits = hybrid_search(
            organization_id=org.pk, source_ids=list(sources.values()), query=QUESTION, top_k=1
        )
    assert fused[2] == sources["Lake trips"]  # third: not among the two the reranker sees
    ((_, body, _),) = reranker.requests
    assert [document.split("\n")[0] for document in body["documents"]] == ["Waterproof boots", "Boot care"]
    assert [hit.source_id for hit in hits] == [fused[0]]


def test_reranker_sends_the_best_fused_candidates_with_their_headings(settings, shop):
    fused = search(shop)
    sources = shop[1]
    titles = {pk: title for title, pk in sources.items()}
    with serve_reranker(Reranker(favourite="lake")) as reranker:
        use(settings, reranker, KNOWLEDGE_RERANK_CANDIDATES=20)
        search(shop)
    ((_, body, _),) = reranker.requests
    assert [document.split("\n")[0] for document in body["documents"]] == [titles[pk] for pk in fused]
    assert "model" not in body


def test_text_embeddings_inference_form_and_bare_list_answer_are_understood(settings, shop):
    lake = shop[1]["Lake trips"]
    with serve_reranker(Reranker(favourite="lake", shape="tei")) as reranker:
        use(settings, reranker)
        assert search(shop)[0] == lake
        assert search(shop)[0] == lake
    bodies = [body for _, body, _ in reranker.requests]
    # The first message learns that this server reads "texts" (after a 422); later ones ask so at once.
    assert ["texts" in body for body in bodies] == [False, True, True]


@pytest.mark.parametrize(
    "reranker",
    [Reranker(favourite="lake", delay=2.0), Reranker(favourite="lake", status=500)],
    ids=["timeout", "error"],
)
def test_a_slow_or_failing_reranker_leaves_the_fused_order_and_is_skipped_for_a_while(
    settings, shop, reranker, caplog
):
    fused = search(shop)
    with serve_reranker(reranker), caplog.at_level(logging.WARNING, logger="knowledge.reranking"):
        use(settings, reranker)
        assert search(shop) == fused
        assert search(shop) == fused  # not asked again right after a failure
    assert len(reranker.requests) == 1
    assert "keeping the fused order" in caplog.text


def test_an_unreachable_reranker_leaves_the_fused_order(settings, shop, caplog):
    fused = search(shop)
    settings.KNOWLEDGE_RERANK_URL = "http://127.0.0.1:9"  # nothing listens
    with caplog.at_level(logging.WARNING, logger="knowledge.reranking"):
        assert search(shop) == fused
    assert "keeping the fused order" in caplog.text


def test_the_reranker_address_still_passes_the_outbound_guard(settings, shop, caplog):
    fused = search(shop)
    settings.KNOWLEDGE_RERANK_URL = "http://169.254.169.254/v1"  # cloud metadata: refused even so
    with caplog.at_level(logging.WARNING, logger="knowledge.reranking"):
        assert search(shop) == fused
    assert "metadata" in caplog.text
