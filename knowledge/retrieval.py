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

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from config.db import replace_broken_connection
from knowledge.embedders import QueryVector, query_vector_for

RRF_K = 60


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: int
    source_id: int
    source_title: str
    url: str | None
    page: int | None
    content: str
    score: float
    heading: str = ""


@dataclass(frozen=True)
class RankedIds:
    """Each method's candidates, best first, with its own score (cosine similarity; BM25)."""

    vector: list[int]
    lexical: list[int]
    vector_scores: list[float]
    lexical_scores: list[float]


Hits = list[tuple[int, float]]  # (chunk id, score), best first


def _vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(f"{value:.6f}" for value in vector) + "]"


# "+ 0" keeps the planner off the HNSW index: the filtered set is small, so it is scanned exactly.
EXACT_SEARCH_SQL = (
    "SELECT id, 1 - distance FROM (SELECT id, embedding <=> %(vector)s::vector AS distance "
    "FROM knowledge_chunk WHERE organization_id = %(org)s AND source_id = ANY(%(sources)s) "
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
    "SELECT id, 1 - distance FROM (SELECT id, embedding <=> %(vector)s::vector AS distance FROM knowledge_chunk "
    "WHERE organization_id = %(org)s AND source_id = ANY(%(sources)s) "
    "ORDER BY embedding <=> %(vector)s::vector LIMIT %(limit)s) AS hits ORDER BY distance"
)


def vector_hits(
    cursor, *, organization_id: int, source_ids: list[int], query_vector: list[float], limit: int, exact: bool
) -> Hits:
    params = {
        "vector": _vector_literal(query_vector),
        "org": organization_id,
        "sources": source_ids,
        "limit": limit,
    }
    if exact:
        cursor.execute(EXACT_SEARCH_SQL, params)
    else:
        # One round trip: PostgreSQL runs a multi-statement query as one transaction, so the SET LOCALs
        # end with it; RESET restores the sort for the rest of an enclosing transaction.
        params["ef_search"] = str(max(int(settings.KNOWLEDGE_HNSW_EF_SEARCH), limit))
        params["max_scan"] = str(int(settings.KNOWLEDGE_HNSW_MAX_SCAN_TUPLES))
        cursor.execute(f"{HNSW_SETTINGS_SQL}; {HNSW_SEARCH_SQL}; RESET enable_sort", params)
        cursor.nextset()
    return [(row[0], float(row[1])) for row in cursor.fetchall()]


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
    lexemes: list[str]  # the query's lexemes (text search configuration KNOWLEDGE_FTS_CONFIG)


def search_scope(cursor, *, organization_id: int, source_ids: list[int], query: str) -> SearchScope:
    """What both methods need to plan, in one round trip."""
    cursor.execute(
        "SELECT (SELECT coalesce(sum(chunk_count), 0) FROM knowledge_source "
        "WHERE organization_id = %s AND id = ANY(%s)), "
        "(SELECT array_agg(lexeme) FROM unnest(to_tsvector(%s::regconfig, %s)))",
        [organization_id, source_ids, settings.KNOWLEDGE_FTS_CONFIG, query],
    )
    searched, lexemes = cursor.fetchone()
    return SearchScope(searched_chunks=int(searched), lexemes=lexemes or [])


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
# that contains a query lexeme; document frequencies are counted from those same rows.
BM25_SQL = """
WITH hits AS MATERIALIZED (
    SELECT chunk_id, lexeme, term_frequency AS tf, chunk_length AS len FROM knowledge_chunkterm
    WHERE lexeme = ANY(%(lexemes)s) AND organization_id = %(org)s AND source_id = ANY(%(sources)s)
),
df AS (SELECT lexeme, count(*) AS n FROM hits GROUP BY lexeme),
avgl AS MATERIALIZED (SELECT greatest(avg(len), 1) AS a FROM hits)
SELECT h.chunk_id, sum(
    ln(1.0::float8 + (greatest(%(n)s, df.n) - df.n + 0.5::float8) / (df.n + 0.5::float8))
    * h.tf * 2.2::float8 / (h.tf + 1.2::float8 * (0.25::float8 + 0.75::float8 * h.len / avgl.a))
) AS score
FROM hits h JOIN df USING (lexeme) CROSS JOIN avgl
GROUP BY h.chunk_id
ORDER BY score DESC, h.chunk_id
LIMIT %(limit)s
"""


def lexical_hits(
    cursor, *, organization_id: int, source_ids: list[int], scope: SearchScope, limit: int
) -> Hits:
    searched_chunks = scope.searched_chunks
    lexemes = budgeted_lexemes(scope.lexemes, searched_chunks=searched_chunks)
    if not lexemes:
        return []
    if settings.KNOWLEDGE_LEXICAL_RANKING == "bm25":
        cursor.execute(
            BM25_SQL,
            {"org": organization_id, "sources": source_ids, "lexemes": lexemes, "n": searched_chunks,
             "limit": limit},
        )  # fmt: skip
    else:
        cursor.execute(
            "SELECT id, ts_rank_cd(search_vector, q, 1) AS score FROM knowledge_chunk, to_tsquery('simple', ("
            "SELECT string_agg(quote_literal(l), ' | ') FROM unnest(%s::text[]) AS l)) AS q "
            "WHERE organization_id = %s AND source_id = ANY(%s) AND search_vector @@ q "
            "ORDER BY score DESC LIMIT %s",
            [lexemes, organization_id, source_ids, limit],
        )
    return [(row[0], float(row[1])) for row in cursor.fetchall()]


def ranked_ids(
    *,
    organization_id: int,
    source_ids: list[int],
    query: str,
    limit: int,
    vector: bool = True,
    lexical: bool = True,
    query_vector: QueryVector = None,
) -> RankedIds:
    """The candidates of each method, best first (used by hybrid_search and the evaluation).

    Outside a transaction the full-text half runs on a second connection while this one waits for (or
    computes) the query's vector and searches vectors: a message waits for the slower half, not both.
    """
    with connection.cursor() as cursor:
        scope = search_scope(cursor, organization_id=organization_id, source_ids=source_ids, query=query)
    lexical_args = {
        "organization_id": organization_id,
        "source_ids": source_ids,
        "scope": scope,
        "limit": limit,
    }
    pending: Future[Hits] | None = None
    if lexical and vector and not connection.in_atomic_block:
        pending = _second_connection.submit(_lexical_on_own_connection, **lexical_args)
    vec: Hits = []
    try:
        if vector:
            exact = use_exact_scan(scope.searched_chunks)
            vector_of_query = query_vector_for(query, query_vector)
            with connection.cursor() as cursor:
                vec = vector_hits(
                    cursor,
                    organization_id=organization_id,
                    source_ids=source_ids,
                    query_vector=vector_of_query,
                    limit=limit,
                    exact=exact,
                )
    finally:
        lex: Hits = pending.result() if pending is not None else []
    if lexical and pending is None:
        with connection.cursor() as cursor:
            lex = lexical_hits(cursor, **lexical_args)
    return RankedIds(
        vector=[pk for pk, _ in vec], lexical=[pk for pk, _ in lex],
        vector_scores=[score for _, score in vec], lexical_scores=[score for _, score in lex],
    )  # fmt: skip


# Threads that keep their own database connection for the full-text half of a search.
_second_connection = ThreadPoolExecutor(max_workers=4, thread_name_prefix="parlor-lexical")


def _lexical_on_own_connection(**kwargs) -> Hits:
    replace_broken_connection()
    with connection.cursor() as cursor:
        return lexical_hits(cursor, **kwargs)


def fuse(
    ranked: RankedIds, *, vector_weight: float | None = None, method: str | None = None, k: int = RRF_K
) -> dict[int, float]:
    """Each candidate's fused score in [0, 1], where 1.0 is a chunk ranked first by both methods.

    ``"score"``: each method's scores are min-max normalised over its candidates and weighted, so how far
    ahead a candidate is counts, not only its place (SciFact nDCG@10 0.727 vs 0.701 at the default
    weight, BENCHMARKS.md).
    ``"rank"``: weighted reciprocal-rank fusion, which ignores the gaps. A method that did not return a
    chunk adds nothing for it.
    """
    w_vec = settings.KNOWLEDGE_VECTOR_WEIGHT if vector_weight is None else vector_weight
    method = method or settings.KNOWLEDGE_FUSION
    parts = ((ranked.vector, ranked.vector_scores, w_vec), (ranked.lexical, ranked.lexical_scores, 1 - w_vec))
    fused: dict[int, float] = {}
    for ids, scores, weight in parts:
        for chunk_id, value in zip(ids, _normalised(ids, scores, method=method, k=k), strict=True):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * value
    return fused


def _normalised(ids: list[int], scores: list[float], *, method: str, k: int) -> list[float]:
    """One method's candidates mapped to [0, 1], the best to 1.0."""
    if method == "rank":
        return [(k + 1) / (k + rank) for rank in range(1, len(ids) + 1)]
    if not scores:
        return []
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
) -> list[RetrievedChunk]:
    """The ``top_k`` best passages of the given sources of one organization for ``query``.

    ``score`` is the fused reciprocal-rank score in [0, 1] (1.0: first for both vector and full-text
    search); passages below ``min_score`` are dropped. Sources of other organizations are never searched,
    whatever ``source_ids`` contains. ``query_vector``: the query's embedding, or a future of it, when the caller has one.
    """
    query = (query or "").strip()
    source_ids = [int(pk) for pk in source_ids]
    if not query or not source_ids or top_k <= 0:
        return []
    candidates = max(settings.KNOWLEDGE_CANDIDATES, top_k * 4)
    ranked = ranked_ids(
        organization_id=organization_id, source_ids=source_ids, query=query, limit=candidates,
        query_vector=query_vector,
    )  # fmt: skip
    scores = fuse(ranked)
    best = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    best = [(chunk_id, score) for chunk_id, score in best if score >= min_score][:top_k]
    # Plain SQL without the vectors: building model instances cost more than the query (bench profile).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.id, c.source_id, s.title, c.url, s.url, c.page, c.content, c.heading "
            "FROM knowledge_chunk c JOIN knowledge_source s ON s.id = c.source_id "
            "WHERE c.id = ANY(%s) AND c.organization_id = %s",
            [[chunk_id for chunk_id, _ in best], organization_id],
        )
        by_id = {row[0]: row for row in cursor.fetchall()}
    out = []
    for chunk_id, score in best:
        if (row := by_id.get(chunk_id)) is None:
            continue  # deleted since it was ranked
        _, source_id, title, chunk_url, source_url, page, content, heading = row
        out.append(
            RetrievedChunk(
                chunk_id=chunk_id, source_id=source_id, source_title=title, url=chunk_url or source_url or None,
                page=page, content=content, score=round(score, 4), heading=heading,
            )
        )  # fmt: skip
    return out
