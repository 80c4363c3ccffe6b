from __future__ import annotations

import random

import pytest
from django.core.files.base import ContentFile
from django.db import connection, transaction

from knowledge import retrieval
from knowledge.chunking import passage_sentences
from knowledge.embedders import active_embedder, embed_search_query
from knowledge.models import Chunk, ChunkTerm, SourceKind
from knowledge.retrieval import hybrid_search, vector_hits
from knowledge.selectors import faq_match
from knowledge.services import embedding_text, source_create, source_ingest
from knowledge.tests.factories import make_organization, make_source

pytestmark = pytest.mark.django_db


def _ingest_text(organization, title: str, text: str):
    source = make_source(organization=organization, kind=SourceKind.TEXT, title=title, text=text)
    source = source_ingest(source_id=source.pk)
    assert source.status == "ready", source.status_reason
    return source


def test_hybrid_search_finds_the_passage_and_cites_its_source():
    org = make_organization()
    returns = _ingest_text(org, "Returns policy", "Boots can be returned within 30 days with the receipt.")
    _ingest_text(org, "Shipping", "We ship to Germany, Austria and Switzerland in two working days.")
    hits = hybrid_search(
        organization_id=org.pk, source_ids=[returns.pk], query="How long do I have to return boots?"
    )
    assert hits and hits[0].source_id == returns.pk
    assert hits[0].source_title == "Returns policy"
    assert "30 days" in hits[0].content
    assert 0 < hits[0].score <= 1


def test_search_is_restricted_to_the_organization_and_the_given_sources():
    org, other = make_organization(), make_organization()
    mine = _ingest_text(org, "Mine", "The warranty lasts two years.")
    theirs = _ingest_text(other, "Theirs", "The warranty lasts five years.")
    hits = hybrid_search(organization_id=org.pk, source_ids=[mine.pk, theirs.pk], query="warranty years")
    assert {hit.source_id for hit in hits} == {mine.pk}
    assert hybrid_search(organization_id=org.pk, source_ids=[], query="warranty") == []


def test_multilingual_question_finds_the_english_passage():
    org = make_organization()
    source = _ingest_text(org, "Returns", "Boots can be returned within 30 days with the receipt.")
    _ingest_text(org, "Opening hours", "The shop opens at nine in the morning on weekdays.")
    hits = hybrid_search(
        organization_id=org.pk, source_ids=[source.pk, source.pk + 1], query="¿Puedo devolver las botas?"
    )
    assert hits[0].source_id == source.pk


def test_faq_match_answers_close_questions_only():
    from knowledge.services import source_create

    org = make_organization()
    source = source_create(
        organization=org, kind=SourceKind.FAQ, title="FAQ",
        faq_pairs=[("What are your opening hours?", "9 to 18, Monday to Friday."), ("Do you ship abroad?", "Yes, EU-wide.")],
    )  # fmt: skip
    source_ingest(source_id=source.pk)
    answer = faq_match(organization_id=org.pk, source_ids=[source.pk], question="what are your opening hours")
    assert answer is not None and answer.answer.startswith("9 to 18") and answer.score == 1.0
    close = faq_match(
        organization_id=org.pk,
        source_ids=[source.pk],
        question="When are you open, what are the opening hours?",
    )
    assert close is not None and close.answer.startswith("9 to 18")
    assert (
        faq_match(organization_id=org.pk, source_ids=[source.pk], question="How do I clean suede boots?")
        is None
    )
    assert (
        faq_match(
            organization_id=make_organization().pk, source_ids=[source.pk], question="Do you ship abroad?"
        )
        is None
    )


def _bulk_chunks(org, source, count: int, rng: random.Random) -> None:
    Chunk.objects.bulk_create(
        [
            Chunk(
                organization=org,
                source=source,
                content=f"chunk {i}",
                embedding_model="test",
                embedding=[rng.gauss(0, 1) for _ in range(384)],
            )
            for i in range(count)
        ],
        batch_size=1000,
    )


@pytest.fixture
def one_percent_corpus():
    """6,000 chunks; the bot's source holds 60 of them (1%)."""
    rng = random.Random(7)
    org = make_organization()
    big = make_source(organization=org, title="Everything else")
    small = make_source(organization=org, title="The bot's source")
    _bulk_chunks(org, big, 5940, rng)
    _bulk_chunks(org, small, 60, rng)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE knowledge_chunk")
    queries = [[rng.gauss(0, 1) for _ in range(384)] for _ in range(10)]
    return org, small, queries


def test_restriction_to_a_one_percent_source_keeps_recall_on_the_hnsw_path(one_percent_corpus):
    org, small, queries = one_percent_corpus
    total_hits = 0
    for query in queries:
        with transaction.atomic(), connection.cursor() as cursor:
            exact = vector_hits(
                cursor,
                organization_id=org.pk,
                source_ids=[small.pk],
                query_vector=query,
                limit=10,
                exact=True,
            ).hits
        with transaction.atomic(), connection.cursor() as cursor:
            approx = vector_hits(
                cursor,
                organization_id=org.pk,
                source_ids=[small.pk],
                query_vector=query,
                limit=10,
                exact=False,
            ).hits
        assert len(approx) == 10
        total_hits += len({pk for pk, _ in exact} & {pk for pk, _ in approx})
    assert total_hits / (10 * len(queries)) >= 0.9


def test_plain_hnsw_scan_without_iterative_scan_would_lose_rows(one_percent_corpus):
    """Documents the trap the iterative scan avoids: filter-after-scan returns too few rows."""
    org, small, queries = one_percent_corpus
    literal = retrieval._vector_literal(queries[0])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL hnsw.iterative_scan = off")
        cursor.execute("SET LOCAL hnsw.ef_search = 40")
        cursor.execute(
            "SELECT id FROM knowledge_chunk WHERE organization_id = %s AND source_id = %s "
            "ORDER BY embedding <=> %s::vector LIMIT 10",
            [org.pk, small.pk, literal],
        )
        assert len(cursor.fetchall()) < 10


def _plan(cursor, sql: str, params: dict) -> str:
    cursor.execute(f"EXPLAIN {sql}", params)
    return "\n".join(row[0] for row in cursor.fetchall())


def test_both_search_paths_use_the_indexes(one_percent_corpus, settings):
    """The statements hybrid_search runs, explained: HNSW, the (organization, source) B-tree, postings."""
    org, small, queries = one_percent_corpus
    params = {"vector": retrieval._vector_literal(queries[0]), "org": org.pk, "sources": [small.pk],
              "limit": 40, "ef_search": "200", "max_scan": "40000"}  # fmt: skip
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(retrieval.HNSW_SETTINGS_SQL, params)
        assert "chunk_embedding_hnsw" in _plan(
            cursor, retrieval.vector_search_sql(exact=False, with_lexical=False), params
        )
        with_postings = retrieval.vector_search_sql(exact=False, with_lexical=True)
        plan = _plan(cursor, with_postings, {**params, "lexemes": ["boot"]})
        assert "chunk_embedding_hnsw" in plan and "chunkterm" in plan
        cursor.execute("RESET enable_sort")  # as vector_hits does
    with transaction.atomic(), connection.cursor() as cursor:
        plan = _plan(cursor, retrieval.vector_search_sql(exact=True, with_lexical=False), params)
    assert "Index Cond: (source_id" in plan and "hnsw" not in plan
    bm25 = {
        "org": org.pk,
        "sources": [small.pk],
        "lexemes": ["boot", "return"],
        "n": 60,
        "limit": 40,
        "vector": retrieval._vector_literal(queries[0]),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # tiny test table: ask whether the indexes apply
        plan = _plan(cursor, retrieval.lexical_search_sql(with_similarity=True), bm25)
        assert "Index Only Scan" in plan and "knowledge_chunk_pkey" in plan
        plan = _plan(
            cursor,
            "SELECT id FROM knowledge_chunk WHERE search_vector @@ to_tsquery('simple', 'boot | return')",
            {},
        )
    assert "chunk_search_gin" in plan


def test_exact_scan_for_few_chunks_or_a_small_share_of_the_table(one_percent_corpus, settings):
    retrieval._table_stats["at"] = 0.0  # read this test's table statistics
    settings.KNOWLEDGE_EXACT_SCAN_MAX = 10
    assert retrieval.use_exact_scan(10)
    assert retrieval.use_exact_scan(50)  # under 1% of the 6,000 chunks: the index would scan too far
    assert not retrieval.use_exact_scan(5940)


def _postings(chunk_id: int) -> dict[str, float]:
    return dict(ChunkTerm.objects.filter(chunk_id=chunk_id).values_list("lexeme", "term_frequency"))


def test_postings_follow_every_change_to_a_chunk():
    """BM25 ranks from knowledge_chunkterm, which a trigger keeps in step with the chunks' tsvectors."""
    org = make_organization()
    source = _ingest_text(org, "Shop notes", "Boots, boots and more boots. Laces sold separately.")
    chunk = Chunk.objects.get(source=source)
    postings = _postings(chunk.pk)
    assert postings["boot"] == 3
    assert postings["lace"] == 1
    rows_before = set(ChunkTerm.objects.filter(chunk_id=chunk.pk).values_list("pk", flat=True))
    Chunk.objects.filter(pk=chunk.pk).update(embedding_model="another-model")  # text unchanged
    assert set(ChunkTerm.objects.filter(chunk_id=chunk.pk).values_list("pk", flat=True)) == rows_before
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_chunk SET search_vector = to_tsvector('english', 'umbrellas') WHERE id = %s",
            [chunk.pk],
        )
    assert _postings(chunk.pk) == {"umbrella": 1}
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM knowledge_chunk WHERE id = %s", [chunk.pk])
    assert _postings(chunk.pk) == {}
    again = Chunk.objects.get(source=_ingest_text(org, "Laces", "Laces in six colours.")).pk
    assert _postings(again)
    source.delete()
    Chunk.objects.filter(pk=again).delete()
    assert not ChunkTerm.objects.filter(organization_id=org.pk).exists()


def test_bm25_prefers_the_chunk_that_is_about_the_rare_word():
    org = make_organization()
    about = _ingest_text(
        org, "Gaiters", "Gaiters keep snow out of boots. Our gaiters are waterproof gaiters."
    )
    mention = _ingest_text(org, "Catalogue", "Boots, socks, hats, gloves and one pair of gaiters.")
    _ingest_text(org, "Boots", "Boots for hiking. Boots for the city. Boots for snow.")
    with connection.cursor() as cursor:
        scope = retrieval.search_scope(
            cursor, organization_id=org.pk, source_ids=[about.pk, mention.pk], query="waterproof gaiters"
        )
        ranked = retrieval.lexical_hits(
            cursor, organization_id=org.pk, source_ids=[about.pk, mention.pk], scope=scope, limit=10
        ).hits
    assert [Chunk.objects.get(pk=pk).source_id for pk, _ in ranked] == [about.pk, mention.pk]
    assert ranked[0][1] > ranked[1][1] > 0


SHOP = (
    ("Returns", "Boots can be returned within 30 days of delivery for a refund."),
    ("Gaiters", "Gaiters keep snow out of your boots on winter hikes."),
    ("Socks", "Merino socks stay warm when wet and do not itch."),
    ("Refunds", "Refunds reach your card within five working days."),
)


def _shop(org) -> list[int]:
    return [_ingest_text(org, title, text).pk for title, text in SHOP]


def test_each_method_scores_the_candidates_only_the_other_found_as_it_would_have_ranked_them():
    org = make_organization()
    ids = _shop(org)
    question = "can I return boots and get my money back"
    top = retrieval.ranked_ids(organization_id=org.pk, source_ids=ids, query=question, limit=1)
    everything = retrieval.ranked_ids(organization_id=org.pk, source_ids=ids, query=question, limit=10)
    cosine = dict(zip(everything.vector, everything.vector_scores, strict=True))
    bm25 = dict(zip(everything.lexical, everything.lexical_scores, strict=True))
    (by_meaning,), (by_words,) = top.vector, top.lexical
    if by_meaning == by_words:
        assert top.extra_vector_scores == {} and top.extra_lexical_scores == {}
    else:
        assert top.extra_vector_scores == {by_words: pytest.approx(cosine[by_words], abs=1e-5)}
        assert top.extra_lexical_scores == {by_meaning: pytest.approx(bm25.get(by_meaning, 0.0))}
    # with more candidates, each method fills in the other's: every candidate is scored by both
    assert set(everything.extra_vector_scores) == set(everything.lexical) - set(everything.vector)
    assert set(everything.extra_lexical_scores) == set(everything.vector) - set(everything.lexical)
    gaiters = Chunk.objects.get(source_id=ids[1]).pk  # shares only "boots": a BM25 score of its own, > 0
    assert bm25.get(gaiters, everything.extra_lexical_scores.get(gaiters, 0.0)) > 0


@pytest.mark.parametrize("exact", [True, False])
def test_each_half_returns_what_scores_its_hits_on_the_other_side(exact):
    org = make_organization()
    ids = _shop(org)
    question = "refund for boots"
    vector = embed_search_query(question)
    with connection.cursor() as cursor:
        scope = retrieval.search_scope(cursor, organization_id=org.pk, source_ids=ids, query=question)
        lexical = retrieval.lexical_hits(
            cursor, organization_id=org.pk, source_ids=ids, scope=scope, limit=10, query_vector=vector
        )
        search = {
            "organization_id": org.pk,
            "source_ids": ids,
            "query_vector": vector,
            "limit": 10,
            "exact": exact,
        }
        ranking = retrieval.vector_hits(cursor, lexemes=scope.searched_lexemes, **search)
        plain = retrieval.vector_hits(cursor, **search)
    assert [pk for pk, _ in ranking.hits] == [pk for pk, _ in plain.hits] and len(plain.hits) == 4
    cosine = dict(plain.hits)
    assert lexical.cosines == pytest.approx({pk: cosine[pk] for pk, _ in lexical.hits}, abs=1e-5)
    for pk, bm25 in lexical.hits:  # BM25 from the vector side's postings = BM25 of the full-text search
        assert lexical.score_of(ranking.postings[pk]) == pytest.approx(bm25)
    assert len(lexical.hits) < 4 and set(ranking.postings) == {pk for pk, _ in lexical.hits}


def test_the_ts_rank_alternative_scores_every_candidate_by_both_methods_too(settings):
    settings.KNOWLEDGE_LEXICAL_RANKING = "ts_rank_cd"
    org = make_organization()
    ids = _shop(org)
    question = "return boots for a refund"
    top = retrieval.ranked_ids(organization_id=org.pk, source_ids=ids, query=question, limit=1)
    everything = retrieval.ranked_ids(organization_id=org.pk, source_ids=ids, query=question, limit=10)
    ts_rank = dict(zip(everything.lexical, everything.lexical_scores, strict=True))
    for pk, value in top.extra_lexical_scores.items():
        assert value == pytest.approx(ts_rank.get(pk, 0.0))
    assert set(everything.extra_lexical_scores) == set(everything.vector) - set(everything.lexical)
    found = hybrid_search(organization_id=org.pk, source_ids=ids, query=question)
    assert found[0].source_id == ids[0]


def test_a_candidate_only_one_method_found_keeps_the_other_methods_filled_in_score():
    # 1 is first by meaning and missed the full-text list, but its filled-in BM25 is nearly the best.
    filled = retrieval.RankedIds(
        vector=[1, 2], vector_scores=[0.9, 0.8], lexical=[2, 3], lexical_scores=[5.0, 1.0],
        extra_vector_scores={3: 0.1}, extra_lexical_scores={1: 4.9},
    )  # fmt: skip
    unfilled = retrieval.RankedIds(
        vector=[1, 2], vector_scores=[0.9, 0.8], lexical=[2, 3], lexical_scores=[5.0, 1.0]
    )
    by_filled, by_unfilled = (
        retrieval.fuse(r, vector_weight=0.4, method="score") for r in (filled, unfilled)
    )
    assert max(by_filled, key=by_filled.get) == 1
    assert max(by_unfilled, key=by_unfilled.get) == 2
    assert all(0.0 <= value <= 1.0 for value in by_filled.values())


def test_score_fusion_counts_how_far_ahead_a_passage_is_where_rank_fusion_sees_only_places():
    # A is far ahead of B by meaning and only just behind B by words; B is second by meaning.
    ranked = retrieval.RankedIds(
        vector=[1, 2, 3], vector_scores=[0.9, 0.3, 0.2], lexical=[2, 1, 3], lexical_scores=[5.0, 4.95, 1.0]
    )
    by_score = retrieval.fuse(ranked, vector_weight=0.4, method="score")
    by_rank = retrieval.fuse(ranked, vector_weight=0.4, method="rank")
    assert max(by_score, key=by_score.get) == 1
    assert max(by_rank, key=by_rank.get) == 2
    both_first = retrieval.RankedIds(
        vector=[7, 8], vector_scores=[0.8, 0.5], lexical=[7], lexical_scores=[3.0]
    )
    for method in ("score", "rank"):
        fused = retrieval.fuse(both_first, vector_weight=0.4, method=method)
        assert fused[7] == pytest.approx(1.0) and 0 <= fused[8] < 1


def _similarity(a, b) -> float:
    """Cosine of two unit vectors."""
    return sum(x * y for x, y in zip(a, b, strict=True))


STORE_GUIDE = (
    "Our flagship store opens at nine on weekdays and at ten on Saturdays. Parking is free for customers "
    "in the garage behind the building. Boots can be returned within 30 days with the receipt. Gift "
    "cards are sold at every till and never expire. The café on the first floor serves breakfast until "
    "eleven."
)


def test_a_chunk_is_also_scored_by_its_best_sentence():
    """A question that one sentence of a passage answers: the passage's similarity blends its own vector's
    (0.3) with that sentence's (0.7), computed in SQL from the vectors stored at ingestion."""
    org = make_organization()
    source = _ingest_text(org, "Store guide", STORE_GUIDE)
    chunk = Chunk.objects.get(source=source)
    sentences = passage_sentences(chunk.content)
    assert len(sentences) == 5 and len(chunk.sentence_embeddings) == 5
    expected = active_embedder().embed_passages([embedding_text(chunk.heading, s) for s in sentences])
    for stored, vector in zip(chunk.sentence_embeddings, expected, strict=True):
        assert stored == pytest.approx(vector, abs=2e-3)  # half precision
    question = embed_search_query("How long do I have to return boots?")
    own = _similarity(question, chunk.embedding)
    by_sentence = [_similarity(question, v) for v in expected]
    assert max(by_sentence) == by_sentence[2] > own  # the returns sentence matches better than the passage
    blended = 0.3 * own + 0.7 * by_sentence[2]
    with connection.cursor() as cursor:
        for exact in (True, False):
            ((pk, score),) = vector_hits(
                cursor, organization_id=org.pk, source_ids=[source.pk], query_vector=question, limit=5,
                exact=exact,
            ).hits  # fmt: skip
            assert pk == chunk.pk and score == pytest.approx(blended, abs=2e-3)


def test_a_chunk_stored_before_sentence_vectors_gets_them_when_its_source_is_ingested_again():
    org = make_organization()
    source = _ingest_text(org, "Store guide", STORE_GUIDE)
    chunk = Chunk.objects.get(source=source)
    Chunk.objects.filter(pk=chunk.pk).update(sentence_embeddings=[])  # as rows written before 0006
    source_ingest(source_id=source.pk)
    again = Chunk.objects.get(source=source)
    assert again.embedding == pytest.approx(chunk.embedding) and len(again.sentence_embeddings) == 5


def test_without_sentence_vectors_a_chunk_is_scored_by_its_own_vector(settings):
    settings.KNOWLEDGE_SENTENCE_VECTORS = False  # faster ingestion, for deployments that choose it
    org = make_organization()
    source = _ingest_text(org, "Store guide", STORE_GUIDE)
    chunk = Chunk.objects.get(source=source)
    assert chunk.sentence_embeddings == []
    question = embed_search_query("How long do I have to return boots?")
    with connection.cursor() as cursor:
        ((_, score),) = vector_hits(
            cursor, organization_id=org.pk, source_ids=[source.pk], query_vector=question, limit=5, exact=True
        ).hits
    assert score == pytest.approx(_similarity(question, chunk.embedding), abs=1e-5)


def test_table_rows_get_no_vectors_of_their_own():
    """A CSV's chunks are records: matched by the chunk's vector and BM25, without a vector per row."""
    org = make_organization()
    names = [
        "alpine",
        "ranger",
        "harbour",
        "summit",
        "meadow",
        "granite",
        "willow",
        "canyon",
        "glacier",
        "prairie",
        "delta",
        "tundra",
        "fjord",
        "savanna",
        "lagoon",
        "marsh",
        "ridge",
        "orchard",
        "quarry",
        "grove",
        "heath",
        "moor",
        "cliff",
        "dune",
        "brook",
        "falls",
        "crest",
    ]
    rows = "\n".join(
        f"{name},{40 + n} EUR,brown leather boot with a rubber sole" for n, name in enumerate(names)
    )
    source = source_create(
        organization=org, kind=SourceKind.FILE, title="Catalogue",
        file=ContentFile(f"name,price,description\n{rows}\n".encode(), name="catalogue.csv"),
    )  # fmt: skip
    source = source_ingest(source_id=source.pk)
    assert source.status == "ready", source.status_reason
    chunks = list(Chunk.objects.filter(source=source))
    assert len(chunks) > 1 and all(chunk.tabular and chunk.sentence_embeddings == [] for chunk in chunks)
    hits = hybrid_search(organization_id=org.pk, source_ids=[source.pk], query="price of the tundra boot")
    assert hits and "name: tundra; price: 51 EUR" in hits[0].content


def test_a_question_matching_only_a_text_sources_title_finds_its_passage_first():
    org = make_organization()
    cancelling = _ingest_text(
        org,
        "Cancellation policy",
        "You may end your plan at any time from the account page; fees already paid stay paid.",
    )
    billing = _ingest_text(
        org,
        "Billing",
        "Invoices are sent by email each month. Our policy team answers questions about the plan.",
    )
    chunk = Chunk.objects.get(source=cancelling)
    assert chunk.heading == "Cancellation policy"  # indexed like a web page's <title>
    hits = hybrid_search(
        organization_id=org.pk,
        source_ids=[cancelling.pk, billing.pk],
        query="What is your cancellation policy?",
    )
    assert hits[0].source_id == cancelling.pk and hits[0].heading == "Cancellation policy"


def test_a_text_source_without_a_title_of_its_own_gets_no_heading_from_its_first_words():
    org = make_organization()
    text = "Boots can be returned within 30 days with the receipt."
    source = source_create(organization=org, kind=SourceKind.TEXT, text=text)  # title: the text's start
    source_ingest(source_id=source.pk)
    assert Chunk.objects.get(source=source).heading == ""
    titled = _ingest_text(org, "Returns", "# Returns\n\nBoots can be returned within 30 days.")
    assert Chunk.objects.get(source=titled).heading == "Returns"  # not "Returns › Returns"


def test_passages_carry_each_sentences_similarity_to_the_question():
    org = make_organization()
    manual = _ingest_text(
        org, "E-bike manual",
        "Welcome to the owner's manual of the city e-bike. Charging takes about four hours with the supplied "
        "cable. The battery lasts 60 kilometres on a full charge. Clean and oil the chain every month.",
    )  # fmt: skip
    short = _ingest_text(org, "Warranty", "The frame has a ten-year warranty.")
    hits = hybrid_search(
        organization_id=org.pk, source_ids=[manual.pk, short.pk], query="How far can I ride?"
    )
    by_source = {hit.source_id: hit for hit in hits}
    sentences = passage_sentences(by_source[manual.pk].content)
    similarities = by_source[manual.pk].sentence_similarities
    assert len(similarities) == len(sentences) == 4  # from the stored sentence vectors, in order
    assert sentences[similarities.index(max(similarities))].startswith("The battery lasts 60 kilometres")
    assert len(by_source[short.pk].sentence_similarities) == 1  # one sentence: the chunk's own vector
