"""Hybrid retrieval: pgvector cosine search + BM25 over PostgreSQL full-text, fused by score (or rank).

One function serves the chat pipeline and the evaluation command, so the benchmark measures what
visitors get.

Restricting to a bot's sources must not cost recall: a plain HNSW scan returns its ``ef_search`` nearest
rows *before* the filter, so a bot owning 1% of the chunks would get almost nothing. Two paths:
* the bot's sources hold few chunks (``KNOWLEDGE_EXACT_SCAN_MAX``) or a small share of the table: an
  exact scan over them through the (organization, source) B-tree index;
* otherwise the HNSW index with pgvector 0.8's iterative scan (``hnsw.iterative_scan = relaxed_order``),
  which keeps walking the graph until enough rows pass the filter; the outer query re-sorts by distance.
An exact scan costs ~2 µs per chunk (vectors stored inline, migration 0004), the index path ~2-3 ms at
any size, hence the small default threshold.

The lexical side ORs the query's lexemes (every-word-must-match ``plainto_tsquery`` finds almost nothing
for natural questions) and ranks them with BM25 computed from a title/heading-weighted ``tsvector``.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from config.db import replace_broken_connection
from knowledge.embedders import QueryVector, query_vector_for
from knowledge.reranking import rerank_enabled, rerank_order

RRF_K = 60


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: int
    source_id: int
    source_title: str
    url: str | None
    page: int | None
    content: str
    score: float  # fused rank score in [0, 1], relative to the other candidates of the same search
    heading: str = ""
    # Cosine similarity of the passage (blended with its best sentence) to the question: comparable across
    # questions, so it tells whether the knowledge covers a question at all.
    similarity: float = 0.0
    # Cosine similarity to the query of each of ``passage_sentences(content)``, from the stored sentence
    # vectors; a chunk without them (one sentence, table rows, sentence vectors off) has one: its own
    # vector's. What the offline provider quotes by (chatbots/llm/offline.py); no extra embedding.
    sentence_similarities: tuple[float, ...] = ()
    start: float | None = None  # seconds into a recording (audio and video sources)


@dataclass(frozen=True)
class RankedIds:
    """Each method's candidates, best first, with its own score (cosine similarity; BM25), and each
    method's score for the candidates only the other one found (``extra_*``: a passage the full-text
    search did not rank still has a BM25 score, possibly 0)."""

    vector: list[int]
    lexical: list[int]
    vector_scores: list[float]
    lexical_scores: list[float]
    extra_vector_scores: dict[int, float] = field(default_factory=dict)
    extra_lexical_scores: dict[int, float] = field(default_factory=dict)


Hits = list[tuple[int, float]]  # (chunk id, score), best first


def _vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(f"{value:.6f}" for value in vector) + "]"


# "+ 0" keeps the planner off the HNSW index: the filtered set is small, so it is scanned exactly.
EXACT_SEARCH_SQL = (
    "SELECT id, 1 - distance AS score, sentences FROM (SELECT id, embedding <=> %(vector)s::vector AS distance, "
    "sentence_embeddings AS sentences FROM knowledge_chunk WHERE organization_id = %(org)s AND source_id = ANY(%(sources)s) "
    "AND embedding IS NOT NULL) AS hits ORDER BY distance + 0 LIMIT %(limit)s"
)
# The filtered set is large: the planner must walk the HNSW index (it would otherwise sometimes sort the
# whole filtered set), iteratively until enough rows pass the filter.
HNSW_SETTINGS_SQL = (
    "SELECT set_config('enable_sort', 'off', true), "
    "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('hnsw.ef_search', %(ef_search)s, true), set_config('hnsw.max_scan_tuples', %(max_scan)s, true)"
)
HNSW_SEARCH_SQL = (
    "SELECT id, 1 - distance AS score, sentences FROM (SELECT id, embedding <=> %(vector)s::vector AS distance, "
    "sentence_embeddings AS sentences FROM knowledge_chunk WHERE organization_id = %(org)s AND source_id = ANY(%(sources)s) "
    "ORDER BY embedding <=> %(vector)s::vector LIMIT %(limit)s) AS hits ORDER BY distance"
)
# With the hits, what the lexical side needs to score them too: their postings of the searched lexemes
# (BM25 is computed once the full-text half has the lexemes' weights), or their ts_rank_cd.
HIT_POSTINGS_SQL = (
    "SELECT chunk_id, NULL::float8, lexeme, term_frequency, chunk_length FROM knowledge_chunkterm "
    "WHERE organization_id = %(org)s AND lexeme = ANY(%(lexemes)s) AND chunk_id = ANY(ARRAY(SELECT id FROM hits))"
)
HIT_TS_RANK_SQL = (
    "SELECT id, NULL::float8, NULL, ts_rank_cd(search_vector, to_tsquery('simple', (SELECT string_agg("
    "quote_literal(l), ' | ') FROM unnest(%(lexemes)s::text[]) AS l)), 1), NULL::float8 FROM knowledge_chunk "
    "WHERE id = ANY(ARRAY(SELECT id FROM hits))"
)


# A chunk's similarity to the question blends its own vector's with its best sentence's (a chunk of one
# sentence, or stored before sentences had vectors, has only the former): a question usually matches one
# sentence, which the chunk's vector blurs. Shares 0.3 / 0.7: SciFact vector-only nDCG@10 0.641 (chunk
# alone) → 0.695 (best sentence alone) → 0.697 (0.3 / 0.7), measured ad hoc (BENCHMARKS.md).
BLENDED_SIMILARITY_SQL = (
    "(0.3 * {own} + 0.7 * coalesce("
    "(SELECT 1 - min(s <=> %(vector)s::halfvec) FROM unnest({sentences}) AS s), {own}))"
)
# The nearest chunks by their own vector (the index), rescored with their sentences.
RESCORED_SEARCH_SQL = "SELECT id, {similarity} AS score FROM ({search}) AS nearest ORDER BY score DESC, id"


def vector_search_sql(*, exact: bool, with_lexical: bool) -> str:
    """The vector search; ``with_lexical``: plus the rows that let the lexical side score its hits."""
    similarity = BLENDED_SIMILARITY_SQL.format(own="nearest.score", sentences="nearest.sentences")
    search = RESCORED_SEARCH_SQL.format(
        similarity=similarity, search=EXACT_SEARCH_SQL if exact else HNSW_SEARCH_SQL
    )
    if not with_lexical:
        return search
    lexical = HIT_POSTINGS_SQL if settings.KNOWLEDGE_LEXICAL_RANKING == "bm25" else HIT_TS_RANK_SQL
    statement = (
        "WITH hits AS MATERIALIZED ({search}) SELECT id, score, NULL, NULL::float8, NULL::float8 FROM hits"
    )
    return statement.format(search=search) + " UNION ALL " + lexical


@dataclass(frozen=True)
class VectorRanking:
    hits: Hits
    # Per hit, what scores it on the lexical side: BM25 postings [(lexeme, term frequency, length)], or
    # its ts_rank_cd. Hits without any searched lexeme are absent (their lexical score is 0).
    postings: dict[int, list[tuple[str, float, float]]] = field(default_factory=dict)
    ts_ranks: dict[int, float] = field(default_factory=dict)


def vector_hits(
    cursor,
    *,
    organization_id: int,
    source_ids: list[int],
    query_vector: list[float],
    limit: int,
    exact: bool,
    lexemes: list[str] | None = None,
) -> VectorRanking:
    """The ``limit`` nearest chunks; given the searched ``lexemes``, also what scores them lexically."""
    with_lexical = bool(lexemes)
    params = {"vector": _vector_literal(query_vector), "org": organization_id, "sources": source_ids,
              "limit": limit, "lexemes": lexemes or []}  # fmt: skip
    sql = vector_search_sql(exact=exact, with_lexical=with_lexical)
    if exact:
        cursor.execute(sql, params)
    else:
        # One round trip: PostgreSQL runs a multi-statement query as one transaction, so the SET LOCALs
        # end with it; RESET restores the sort for the rest of an enclosing transaction.
        params["ef_search"] = str(max(int(settings.KNOWLEDGE_HNSW_EF_SEARCH), limit))
        params["max_scan"] = str(int(settings.KNOWLEDGE_HNSW_MAX_SCAN_TUPLES))
        cursor.execute(f"{HNSW_SETTINGS_SQL}; {sql}; RESET enable_sort", params)
        cursor.nextset()
    rows = cursor.fetchall()
    if not with_lexical:
        return VectorRanking(hits=[(row[0], float(row[1])) for row in rows])
    ranking = VectorRanking(
        hits=sorted(
            ((row[0], float(row[1])) for row in rows if row[1] is not None), key=lambda h: (-h[1], h[0])
        )
    )
    for pk, score, lexeme, value, length in rows:
        if score is not None:
            continue
        if lexeme is not None:
            ranking.postings.setdefault(pk, []).append((lexeme, float(value), float(length)))
        elif value is not None:
            ranking.ts_ranks[pk] = float(value)
    return ranking


_table_stats: dict[str, object] = {"at": 0.0, "freqs": {}, "rows": 0.0}


def _refresh_table_stats() -> None:
    """Chunk count and the most common lexemes' shares, from the planner's statistics (cached 5 minutes)."""
    if time.monotonic() - float(_table_stats["at"]) < 300:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.reltuples, s.most_common_elems::text::text[], s.most_common_elem_freqs "
            "FROM pg_class c LEFT JOIN pg_stats s ON s.tablename = c.relname AND s.attname = 'search_vector' "
            "WHERE c.oid = 'knowledge_chunk'::regclass"
        )
        row = cursor.fetchone()
    freqs = dict(zip(row[1], row[2], strict=False)) if row and row[1] else {}
    _table_stats.update(at=time.monotonic(), freqs=freqs, rows=float(row[0] or 0) if row else 0.0)


def common_lexeme_frequencies() -> dict[str, float]:
    _refresh_table_stats()
    return _table_stats["freqs"]  # type: ignore[return-value]


def use_exact_scan(searched_chunks: int) -> bool:
    """Exact scan for few chunks, or for a share of the table too small for the index to find 40 of them
    within ``KNOWLEDGE_HNSW_MAX_SCAN_TUPLES`` (under ~1%)."""
    if searched_chunks <= settings.KNOWLEDGE_EXACT_SCAN_MAX:
        return True
    _refresh_table_stats()
    return searched_chunks * 100 < float(_table_stats["rows"])


@dataclass(frozen=True)
class SearchScope:
    searched_chunks: int  # chunks in the searched sources
    lexemes: list[str]  # the query's lexemes, stemmed by each text search configuration of the sources
    searched_lexemes: list[str]  # those both methods score with (``budgeted_lexemes``)


def search_scope(cursor, *, organization_id: int, source_ids: list[int], query: str) -> SearchScope:
    """What both methods need to plan, in one round trip. The query is stemmed with every text search
    configuration among the sources (each source's chunks were indexed in their own language), so a
    German source matches German word forms and an English one English forms."""
    cursor.execute(
        "SELECT (SELECT coalesce(sum(chunk_count), 0) FROM knowledge_source "
        "WHERE organization_id = %(org)s AND id = ANY(%(sources)s)), "
        "(SELECT array_agg(DISTINCT lexeme) FROM (SELECT DISTINCT text_search_config::regconfig AS config "
        "FROM knowledge_source WHERE organization_id = %(org)s AND id = ANY(%(sources)s)) AS configs, "
        "unnest(to_tsvector(configs.config, %(query)s)))",
        {"org": organization_id, "sources": source_ids, "query": query},
    )
    searched, lexemes = cursor.fetchone()
    lexemes = lexemes or []
    return SearchScope(
        searched_chunks=int(searched), lexemes=lexemes,
        searched_lexemes=budgeted_lexemes(lexemes, searched_chunks=int(searched)),
    )  # fmt: skip


def budgeted_lexemes(lexemes: list[str], *, searched_chunks: int) -> list[str]:
    """The query's lexemes, rarest first, as many as keep the rows to rank under
    ``KNOWLEDGE_FTS_MAX_RANKED_ROWS``. A very common lexeme matches most chunks: ranking all of them is
    slow (200 ms at 10k chunks) and, like a stop word, it adds little. The rarest is always kept; in
    small knowledge bases every lexeme is."""
    freqs = common_lexeme_frequencies()
    budget = settings.KNOWLEDGE_FTS_MAX_RANKED_ROWS
    kept: list[str] = []
    estimated = 0.0
    for lexeme in sorted(lexemes, key=lambda lexeme: freqs.get(lexeme, 0.0)):
        rows = freqs.get(lexeme, 0.0) * searched_chunks
        if kept and estimated + rows > budget:
            break
        kept.append(lexeme)
        estimated += rows
    return kept


# BM25 from the postings table (``ChunkTerm``, filled by a trigger from each chunk's tsvector): an
# index-only scan of (lexeme, organization, source) yields the term frequency and length of every chunk
# that contains a query lexeme; document frequencies are counted from those same rows. Each row also
# carries the lexemes' weights and the average length (to score the vector side's hits the same way) and,
# given the query's vector, the hit's cosine similarity (to score it on the vector side).
BM25_SQL = """
WITH hits AS MATERIALIZED (
    SELECT chunk_id, lexeme, term_frequency AS tf, chunk_length AS len FROM knowledge_chunkterm
    WHERE lexeme = ANY(%(lexemes)s) AND organization_id = %(org)s AND source_id = ANY(%(sources)s)
),
idf AS MATERIALIZED (
    SELECT lexeme, ln(1.0::float8 + (greatest(%(n)s, count(*)) - count(*) + 0.5::float8) / (count(*) + 0.5::float8))
    AS w FROM hits GROUP BY lexeme
),
avgl AS MATERIALIZED (SELECT greatest(avg(len), 1) AS a FROM hits),
ranked AS MATERIALIZED (
    SELECT h.chunk_id, sum(
        idf.w * h.tf * 2.2::float8 / (h.tf + 1.2::float8 * (0.25::float8 + 0.75::float8 * h.len / avgl.a))
    ) AS score
    FROM hits h JOIN idf USING (lexeme) CROSS JOIN avgl
    GROUP BY h.chunk_id
    ORDER BY score DESC, h.chunk_id
    LIMIT %(limit)s
)
SELECT r.chunk_id, r.score, (SELECT json_object_agg(lexeme, w) FROM idf), (SELECT a FROM avgl),
    {similarity}
FROM ranked r JOIN knowledge_chunk c ON c.id = r.chunk_id
ORDER BY r.score DESC, r.chunk_id
"""
TS_RANK_SQL = (
    "SELECT id, ts_rank_cd(search_vector, q, 1) AS score, NULL, NULL, {similarity} "
    "FROM knowledge_chunk c, to_tsquery('simple', (SELECT string_agg(quote_literal(l), ' | ') "
    "FROM unnest(%(lexemes)s::text[]) AS l)) AS q WHERE organization_id = %(org)s AND source_id = ANY(%(sources)s) "
    "AND search_vector @@ q ORDER BY score DESC, id LIMIT %(limit)s"
)


def lexical_search_sql(*, with_similarity: bool) -> str:
    """The full-text search; ``with_similarity``: its hits' blended similarity too (the query's vector given)."""
    template = BM25_SQL if settings.KNOWLEDGE_LEXICAL_RANKING == "bm25" else TS_RANK_SQL
    similarity = BLENDED_SIMILARITY_SQL.format(
        own="(1 - (c.embedding <=> %(vector)s::vector))", sentences="c.sentence_embeddings"
    )
    return template.replace("{similarity}", similarity if with_similarity else "NULL::float8")


@dataclass(frozen=True)
class LexicalRanking:
    hits: Hits
    weights: dict[str, float] = field(default_factory=dict)  # BM25: each searched lexeme's weight (idf)
    average_length: float = 1.0  # BM25: average length of the chunks that contain a searched lexeme
    cosines: dict[int, float] = field(default_factory=dict)  # the hits' similarity, given the vector

    def score_of(self, postings: list[tuple[str, float, float]]) -> float:
        """BM25 of a chunk from its postings of the searched lexemes: as ``BM25_SQL`` computes it."""
        return sum(
            self.weights.get(lexeme, 0.0)
            * tf
            * 2.2
            / (tf + 1.2 * (0.25 + 0.75 * length / self.average_length))
            for lexeme, tf, length in postings
        )


def lexical_hits(
    cursor,
    *,
    organization_id: int,
    source_ids: list[int],
    scope: SearchScope,
    limit: int,
    query_vector: list[float] | None = None,
) -> LexicalRanking:
    """The ``limit`` best chunks by the query's searched lexemes; given ``query_vector``, with their cosine
    similarity too."""
    if not scope.searched_lexemes:
        return LexicalRanking(hits=[])
    params = {"org": organization_id, "sources": source_ids, "lexemes": scope.searched_lexemes,
              "n": scope.searched_chunks, "limit": limit,
              "vector": _vector_literal(query_vector) if query_vector is not None else None}  # fmt: skip
    bm25 = settings.KNOWLEDGE_LEXICAL_RANKING == "bm25"
    cursor.execute(lexical_search_sql(with_similarity=query_vector is not None), params)
    rows = cursor.fetchall()
    weights, average_length = (rows[0][2], float(rows[0][3])) if rows and bm25 else ({}, 1.0)
    if isinstance(weights, str):  # json arrives as text where the driver leaves it unparsed
        weights = json.loads(weights)
    return LexicalRanking(
        hits=[(row[0], float(row[1])) for row in rows], weights=weights, average_length=average_length,
        cosines={row[0]: float(row[4]) for row in rows if row[4] is not None},
    )  # fmt: skip


def ranked_ids(
    *,
    organization_id: int,
    source_ids: list[int],
    query: str,
    limit: int,
    vector: bool = True,
    lexical: bool = True,
    query_vector: QueryVector = None,
    fill_in: bool = True,
) -> RankedIds:
    """The candidates of each method, best first, and each method's scores for the other's candidates
    (used by hybrid_search and the evaluation; ``fill_in=False`` skips the latter, which rank fusion
    does not use).

    Outside a transaction the full-text half runs on a second connection while this one waits for (or
    computes) the query's vector and searches vectors: a message waits for the slower half, not both.
    """
    with connection.cursor() as cursor:
        scope = search_scope(cursor, organization_id=organization_id, source_ids=source_ids, query=query)
    if vector and fill_in and query_vector is None and scope.searched_lexemes:
        query_vector = query_vector_for(query, None)  # both halves use it
    lexical_args = {
        "organization_id": organization_id,
        "source_ids": source_ids,
        "scope": scope,
        "limit": limit,
    }
    pending: Future[LexicalRanking] | None = None
    lex: LexicalRanking | None = None
    if lexical and vector and not connection.in_atomic_block:
        # The full-text half waits for the question's vector only to return its hits' similarity.
        pending = _second_connection.submit(
            _lexical_on_own_connection,
            query=query,
            query_vector=query_vector if fill_in else None,
            **lexical_args,
        )
    elif lexical:
        with connection.cursor() as cursor:
            vector_of_query = query_vector_for(query, query_vector) if vector and fill_in else None
            lex = lexical_hits(cursor, query_vector=vector_of_query, **lexical_args)
    ranking = VectorRanking(hits=[])
    try:
        if vector:
            vector_of_query = query_vector_for(query, query_vector)
            with connection.cursor() as cursor:
                ranking = vector_hits(
                    cursor, organization_id=organization_id, source_ids=source_ids, query_vector=vector_of_query,
                    limit=limit, exact=use_exact_scan(scope.searched_chunks),
                    lexemes=scope.searched_lexemes if lexical and fill_in else None,
                )  # fmt: skip
    finally:
        if pending is not None:
            lex = pending.result()
    text = lex.hits if lex is not None else []
    extra_vector: dict[int, float] = {}
    extra_lexical: dict[int, float] = {}
    if fill_in and vector and lex is not None:
        vector_ids = {pk for pk, _ in ranking.hits}
        lexical_ids = {pk for pk, _ in text}
        extra_vector = {pk: score for pk, score in lex.cosines.items() if pk not in vector_ids}
        for pk in vector_ids - lexical_ids:
            if settings.KNOWLEDGE_LEXICAL_RANKING == "bm25":
                extra_lexical[pk] = lex.score_of(ranking.postings.get(pk, []))
            else:
                extra_lexical[pk] = ranking.ts_ranks.get(pk, 0.0)
    return RankedIds(
        vector=[pk for pk, _ in ranking.hits], lexical=[pk for pk, _ in text],
        vector_scores=[score for _, score in ranking.hits], lexical_scores=[score for _, score in text],
        extra_vector_scores=extra_vector, extra_lexical_scores=extra_lexical,
    )  # fmt: skip


# Threads that keep their own database connection for the full-text half of a search.
_second_connection = ThreadPoolExecutor(max_workers=4, thread_name_prefix="parlor-lexical")


def _lexical_on_own_connection(*, query: str, query_vector: QueryVector, **kwargs) -> LexicalRanking:
    replace_broken_connection()
    vector_of_query = query_vector_for(query, query_vector) if query_vector is not None else None
    with connection.cursor() as cursor:
        return lexical_hits(cursor, query_vector=vector_of_query, **kwargs)


def fuse(
    ranked: RankedIds, *, vector_weight: float | None = None, method: str | None = None, k: int = RRF_K
) -> dict[int, float]:
    """Each candidate's fused score in [0, 1], where 1.0 is a chunk ranked first by both methods.

    ``"score"``: every candidate of either method is scored by both (its own score, or the one ``ranked_ids``
    filled in from what the other search returned); each method's scores are min-max normalised over all candidates and
    weighted, so how far ahead a candidate is counts, not only its place (SciFact nDCG@10 0.742 vs 0.703
    for rank fusion; NFCorpus 0.362 vs 0.342, BENCHMARKS.md).
    ``"rank"``: weighted reciprocal-rank fusion of each method's own list, which ignores the gaps; a
    method that did not return a chunk adds nothing for it.
    """
    w_vec = settings.KNOWLEDGE_VECTOR_WEIGHT if vector_weight is None else vector_weight
    method = method or settings.KNOWLEDGE_FUSION
    fused: dict[int, float] = {}
    if method == "rank":
        for ids, weight in ((ranked.vector, w_vec), (ranked.lexical, 1 - w_vec)):
            for rank, chunk_id in enumerate(ids, start=1):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * (k + 1) / (k + rank)
        return fused
    candidates = list(dict.fromkeys([*ranked.vector, *ranked.lexical]))
    vector = {**ranked.extra_vector_scores, **dict(zip(ranked.vector, ranked.vector_scores, strict=True))}
    lexical = {**ranked.extra_lexical_scores, **dict(zip(ranked.lexical, ranked.lexical_scores, strict=True))}
    floor = min(ranked.vector_scores, default=0.0)  # a similarity not filled in: the list's last
    parts = (
        (ranked.vector, [vector.get(pk, floor) for pk in candidates], w_vec),
        (ranked.lexical, [lexical.get(pk, 0.0) for pk in candidates], 1 - w_vec),
    )
    for own, scores, weight in parts:
        if not own:
            continue  # the method found nothing: it adds nothing
        for chunk_id, value in zip(candidates, _min_max(scores), strict=True):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * value
    return fused


def _min_max(scores: list[float]) -> list[float]:
    """Scores mapped to [0, 1], the best to 1.0."""
    high, low = max(scores), min(scores)
    if high - low < 1e-12:
        return [1.0] * len(scores)
    return [(value - low) / (high - low) for value in scores]


def hybrid_search(
    *,
    organization_id: int,
    source_ids: list[int],
    query: str,
    top_k: int = 6,
    min_score: float = 0.0,
    query_vector: QueryVector = None,
    judge_vector: list[float] | None = None,
) -> list[RetrievedChunk]:
    """The ``top_k`` best passages of the given sources of one organization for ``query``.

    ``score`` is the fused score in [0, 1] (1.0: first for both vector and full-text
    search); passages below ``min_score`` are dropped. Sources of other organizations are never searched,
    whatever ``source_ids`` contains. ``query_vector``: the query's embedding, or a future of it, when the caller has one.
    ``judge_vector``: the vector the passages' ``similarity`` and sentence similarities are measured
    against instead of the query's (a self-contained question searched with its conversation is judged on
    its own words); the ranking does not change.
    """
    query = (query or "").strip()
    source_ids = [int(pk) for pk in source_ids]
    if not query or not source_ids or top_k <= 0:
        return []
    candidates = max(settings.KNOWLEDGE_CANDIDATES, top_k * 4)
    ranked = ranked_ids(
        organization_id=organization_id, source_ids=source_ids, query=query, limit=candidates,
        query_vector=query_vector, fill_in=settings.KNOWLEDGE_FUSION == "score",
    )  # fmt: skip
    scores = fuse(ranked)
    similarity = {**ranked.extra_vector_scores, **dict(zip(ranked.vector, ranked.vector_scores, strict=True))}
    floor = min(ranked.vector_scores, default=0.0)
    best = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    best = [(chunk_id, score) for chunk_id, score in best if score >= min_score]
    # With a reranker, its pick of the first KNOWLEDGE_RERANK_CANDIDATES: their texts come in the same
    # query as the passages'. ``score`` stays the fused one (what thresholds are calibrated on).
    reranking = rerank_enabled() and len(best) > 1
    best = best[: max(top_k, settings.KNOWLEDGE_RERANK_CANDIDATES) if reranking else top_k]
    if not best:
        return []
    # Plain SQL without the vectors: building model instances cost more than the query (bench profile).
    # The query's vector is known by now (cached, or the future the search waited for).
    with connection.cursor() as cursor:
        cursor.execute(
            PASSAGES_SQL,
            {"ids": [chunk_id for chunk_id, _ in best], "org": organization_id,
             "vector": _vector_literal(judge_vector or query_vector_for(query, query_vector))},
        )  # fmt: skip
        by_id = {row[0]: row for row in cursor.fetchall()}
    if judge_vector is not None:
        # Measured against the judge's vector as BLENDED_SIMILARITY_SQL measures: 0.3 × the chunk's own
        # cosine + 0.7 × its best sentence's (a chunk without sentence vectors lists its own cosine there).
        for chunk_id, row in by_id.items():
            sentences = [float(value) for value in row[8] or () if value is not None] or [float(row[9])]
            similarity[chunk_id] = 0.3 * float(row[9]) + 0.7 * max(sentences)
    if reranking:
        best = [hit for hit in best if hit[0] in by_id]  # not deleted since it was ranked
        # Each passage with its heading, as it was embedded: the heading says what the passage is about.
        texts = [f"{by_id[pk][7]}\n{by_id[pk][6]}" if by_id[pk][7] else by_id[pk][6] for pk, _ in best]
        order = rerank_order(query, texts)
        best = [best[index] for index in order] if order is not None else best
    out = []
    for chunk_id, score in best[:top_k]:
        if (row := by_id.get(chunk_id)) is None:
            continue  # deleted since it was ranked
        _, source_id, title, chunk_url, source_url, page, content, heading, similarities, _own, start = row
        out.append(
            RetrievedChunk(
                chunk_id=chunk_id, source_id=source_id, source_title=title, url=chunk_url or source_url or None,
                page=page, content=content, score=round(score, 4), heading=heading,
                similarity=round(similarity.get(chunk_id, floor), 4),
                sentence_similarities=tuple(round(float(value), 4) for value in similarities or () if value is not None),
                start=start,
            )
        )  # fmt: skip
    return out


# The passages to return, each with its sentences' similarity to the query (in sentence order), or its
# own vector's when it has no sentence vectors: a few dozen distances, well under a millisecond.
PASSAGES_SQL = (
    "SELECT c.id, c.source_id, s.title, c.url, s.url, c.page, c.content, c.heading, "
    "CASE WHEN cardinality(c.sentence_embeddings) > 0 THEN ARRAY(SELECT 1 - (u.v <=> %(vector)s::halfvec) "
    "FROM unnest(c.sentence_embeddings) WITH ORDINALITY AS u(v, n) ORDER BY u.n) "
    "ELSE ARRAY[1 - (c.embedding <=> %(vector)s::vector)] END, 1 - (c.embedding <=> %(vector)s::vector), "
    "c.start_seconds "
    "FROM knowledge_chunk c JOIN knowledge_source s ON s.id = c.source_id "
    "WHERE c.id = ANY(%(ids)s) AND c.organization_id = %(org)s"
)
