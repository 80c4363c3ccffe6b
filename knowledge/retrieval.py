"""Hybrid retrieval: pgvector HNSW cosine + PostgreSQL full-text, fused by weighted reciprocal rank.

One function serves the chat pipeline and the evaluation command, so the benchmark measures what
visitors get.

Restricting to a bot's sources must not cost recall: a plain HNSW scan returns its ``ef_search`` nearest
rows *before* the filter, so a bot owning 1% of the chunks would get almost nothing. Two paths:
* the bot's sources hold few chunks (``KNOWLEDGE_EXACT_SCAN_MAX``): an exact scan over them through the
  (organization, source) B-tree index — exact and fast at that size;
* otherwise the HNSW index with pgvector 0.8's iterative scan (``hnsw.iterative_scan = relaxed_order``),
  which keeps walking the graph until enough rows pass the filter; the outer query re-sorts by distance.

The lexical side ORs the query's lexemes (every-word-must-match ``plainto_tsquery`` finds almost nothing
for natural questions) and ranks with ``ts_rank_cd`` over a title/heading-weighted ``tsvector``.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from knowledge.embedders import embed_search_query

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
    vector: list[int]
    lexical: list[int]


def _vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(f"{value:.6f}" for value in vector) + "]"


def filtered_chunk_count(*, organization_id: int, source_ids: list[int]) -> int:
    from knowledge.models import Source

    counts = Source.objects.filter(organization_id=organization_id, pk__in=source_ids).values_list(
        "chunk_count", flat=True
    )
    return sum(counts)


def vector_ids(
    cursor, *, organization_id: int, source_ids: list[int], query_vector: list[float], limit: int, exact: bool
) -> list[int]:
    literal = _vector_literal(query_vector)
    if exact:
        # "+ 0" keeps the planner off the HNSW index: the filtered set is small, so scan it exactly.
        sql = (
            "SELECT id FROM knowledge_chunk WHERE organization_id = %s AND source_id = ANY(%s) "
            "AND embedding IS NOT NULL ORDER BY (embedding <=> %s::vector) + 0 LIMIT %s"
        )
    else:
        # The caller decided the filtered set is large: make the planner walk the HNSW index (it would
        # otherwise sometimes sort the whole filtered set), iteratively until enough rows pass the filter.
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(f"SET LOCAL hnsw.ef_search = {max(int(settings.KNOWLEDGE_HNSW_EF_SEARCH), limit)}")
        cursor.execute(f"SET LOCAL hnsw.max_scan_tuples = {int(settings.KNOWLEDGE_HNSW_MAX_SCAN_TUPLES)}")
        sql = (
            "SELECT id FROM (SELECT id, embedding <=> %s::vector AS distance FROM knowledge_chunk "
            "WHERE organization_id = %s AND source_id = ANY(%s) ORDER BY embedding <=> %s::vector LIMIT %s"
            ") AS hits ORDER BY distance"
        )
        cursor.execute(sql, [literal, organization_id, source_ids, literal, limit])
        return [row[0] for row in cursor.fetchall()]
    cursor.execute(sql, [organization_id, source_ids, literal, limit])
    return [row[0] for row in cursor.fetchall()]


_lexeme_stats: dict[str, object] = {"at": 0.0, "freqs": {}}


def common_lexeme_frequencies() -> dict[str, float]:
    """Share of chunks containing each of the most common lexemes (from ANALYZE's statistics; cached)."""
    if time.monotonic() - float(_lexeme_stats["at"]) < 300:
        return _lexeme_stats["freqs"]  # type: ignore[return-value]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
            "WHERE tablename = 'knowledge_chunk' AND attname = 'search_vector'"
        )
        row = cursor.fetchone()
    freqs = dict(zip(row[0], row[1], strict=False)) if row and row[0] else {}
    _lexeme_stats.update(at=time.monotonic(), freqs=freqs)
    return freqs


def query_lexemes(cursor, query: str, *, searched_chunks: int) -> list[str]:
    """The query's lexemes, rarest first, as many as keep the rows to rank under
    ``KNOWLEDGE_FTS_MAX_RANKED_ROWS``. A very common lexeme matches most chunks: ranking all of them is
    slow (200 ms at 10k chunks) and, like a stop word, it adds little. The rarest is always kept; in
    small knowledge bases every lexeme is."""
    cursor.execute(
        "SELECT array_agg(lexeme) FROM unnest(to_tsvector(%s::regconfig, %s))",
        [settings.KNOWLEDGE_FTS_CONFIG, query],
    )
    lexemes = cursor.fetchone()[0] or []
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


# BM25 over PostgreSQL's tsvector: candidates are the chunks matching any query lexeme (GIN index);
# term frequencies come from the tsvector's positions (heading positions, weight A, count twice) and
# document frequencies from the candidates themselves (a chunk containing a query lexeme is a candidate).
BM25_SQL = """
WITH cand AS MATERIALIZED (
    SELECT id, search_vector, length(search_vector)::float8 AS len FROM knowledge_chunk
    WHERE organization_id = %(org)s AND source_id = ANY(%(sources)s) AND search_vector @@ to_tsquery('simple', (
        SELECT string_agg(quote_literal(l), ' | ') FROM unnest(%(lexemes)s::text[]) AS l
    ))
),
terms AS (
    SELECT c.id, c.len, u.lexeme,
           (cardinality(u.positions) + cardinality(array_positions(u.weights, 'A')))::float8 AS tf
    FROM cand c, unnest(c.search_vector) AS u
    WHERE u.lexeme = ANY(%(lexemes)s)
),
df AS (SELECT lexeme, count(*) AS n FROM terms GROUP BY lexeme),
avgl AS (SELECT greatest(avg(len), 1) AS a FROM cand)
SELECT t.id FROM terms t JOIN df USING (lexeme) CROSS JOIN avgl
GROUP BY t.id
ORDER BY sum(
    ln(1.0::float8 + (greatest(%(n)s, df.n) - df.n + 0.5::float8) / (df.n + 0.5::float8))
    * t.tf * 2.2::float8 / (t.tf + 1.2::float8 * (0.25::float8 + 0.75::float8 * t.len / avgl.a))
) DESC, t.id
LIMIT %(limit)s
"""


def lexical_ids(
    cursor, *, organization_id: int, source_ids: list[int], query: str, limit: int, searched_chunks: int = 0
) -> list[int]:
    lexemes = query_lexemes(cursor, query, searched_chunks=searched_chunks)
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
            "SELECT id FROM knowledge_chunk, to_tsquery('simple', ("
            "SELECT string_agg(quote_literal(l), ' | ') FROM unnest(%s::text[]) AS l)) AS q "
            "WHERE organization_id = %s AND source_id = ANY(%s) AND search_vector @@ q "
            "ORDER BY ts_rank_cd(search_vector, q, 1) DESC LIMIT %s",
            [lexemes, organization_id, source_ids, limit],
        )
    return [row[0] for row in cursor.fetchall()]


def ranked_ids(
    *,
    organization_id: int,
    source_ids: list[int],
    query: str,
    limit: int,
    vector: bool = True,
    lexical: bool = True,
    query_vector: list[float] | None = None,
) -> RankedIds:
    """The candidates of each method, best first (used by hybrid_search and the evaluation)."""
    vec: list[int] = []
    lex: list[int] = []
    searched = filtered_chunk_count(organization_id=organization_id, source_ids=source_ids)
    with connection.cursor() as cursor:
        if vector:
            exact = searched <= settings.KNOWLEDGE_EXACT_SCAN_MAX
            if query_vector is None:
                query_vector = embed_search_query(query)
            # The index path tunes the scan with SET LOCAL, which needs a transaction of its own.
            with transaction.atomic() if not exact else nullcontext():
                vec = vector_ids(
                    cursor,
                    organization_id=organization_id,
                    source_ids=source_ids,
                    query_vector=query_vector,
                    limit=limit,
                    exact=exact,
                )
        if lexical:
            lex = lexical_ids(
                cursor,
                organization_id=organization_id,
                source_ids=source_ids,
                query=query,
                limit=limit,
                searched_chunks=searched,
            )
    return RankedIds(vector=vec, lexical=lex)


def fuse(ranked: RankedIds, *, vector_weight: float | None = None, k: int = RRF_K) -> dict[int, float]:
    """Weighted reciprocal-rank fusion, normalised so a chunk ranked first by both methods scores 1.0."""
    w_vec = settings.KNOWLEDGE_VECTOR_WEIGHT if vector_weight is None else vector_weight
    w_lex = 1.0 - w_vec
    scores: dict[int, float] = {}
    for rank, chunk_id in enumerate(ranked.vector, start=1):
        scores[chunk_id] = scores.get(chunk_id, 0.0) + w_vec / (k + rank)
    for rank, chunk_id in enumerate(ranked.lexical, start=1):
        scores[chunk_id] = scores.get(chunk_id, 0.0) + w_lex / (k + rank)
    best = 1.0 / (k + 1)
    return {chunk_id: score / best for chunk_id, score in scores.items()}


def hybrid_search(
    *,
    organization_id: int,
    source_ids: list[int],
    query: str,
    top_k: int = 6,
    min_score: float = 0.0,
    query_vector: list[float] | None = None,
) -> list[RetrievedChunk]:
    """The ``top_k`` best passages of the given sources of one organization for ``query``.

    ``score`` is the fused reciprocal-rank score in [0, 1] (1.0: first for both vector and full-text
    search); passages below ``min_score`` are dropped. Sources of other organizations are never searched,
    whatever ``source_ids`` contains. ``query_vector``: the query's embedding, when the caller has it.
    """
    from knowledge.models import Chunk

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
    rows = Chunk.objects.filter(
        pk__in=[chunk_id for chunk_id, _ in best], organization_id=organization_id
    ).select_related("source")
    by_id = {chunk.pk: chunk for chunk in rows}
    out = []
    for chunk_id, score in best:
        chunk = by_id.get(chunk_id)
        if chunk is None:
            continue
        out.append(
            RetrievedChunk(
                chunk_id=chunk.pk,
                source_id=chunk.source_id,
                source_title=chunk.source.title if chunk.source else "",
                url=chunk.url or (chunk.source.url if chunk.source and chunk.source.url else None),
                page=chunk.page,
                content=chunk.content,
                score=round(score, 4),
                heading=chunk.heading,
            )
        )
    return out
