"""Retrieval latency (p50/p95) and HNSW recall@10 against exact search, at 10k and 100k chunks.

    .venv/bin/python bench/retrieval_bench.py [--sizes 10000,100000] [--queries 200] [--ef-search 40,100,200]

Uses its own embedded database (``parlor_bench_retrieval``). Chunks get synthetic but clustered vectors
(cluster centre + noise: closer to real embeddings than uniform noise, which is HNSW's worst case) and
synthetic text drawn from a Zipf-like vocabulary, so both halves of the hybrid search do real work.
Measured: the SQL of ``hybrid_search`` (vector + full-text, fused) for a bot that owns all chunks (HNSW
path) and for one that owns 1% (exact path), plus the query embedding of the offline model separately.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIM = 384


def setup_django() -> None:
    if not os.environ.get("DATABASE_URL"):
        from config.embedded import embedded_database_url

        os.environ["DATABASE_URL"] = embedded_database_url(
            ROOT / ".parlor" / "pgdata", "parlor_bench_retrieval"
        )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def normalise(vector: list[float]) -> list[float]:
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


SENTENCES_PER_CHUNK = 6  # SciFact's chunks average 5.6 sentence vectors


def sentence_vectors(generator, vector, count: int = SENTENCES_PER_CHUNK) -> list[list[float]]:
    """Vectors around a chunk's own, standing in for its sentences' (retrieval reads them for every hit)."""
    import numpy as np

    noisy = vector + generator.normal(scale=0.9 / DIM**0.5, size=(count, DIM))
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return noisy.tolist()


def make_corpus(organization, size: int, rng: random.Random):
    import numpy as np
    from django.db import connection

    from knowledge.models import Chunk, Source, SourceKind

    words = [f"w{i}" for i in range(5000)]
    weights = [1 / (i + 1) for i in range(len(words))]
    generator = np.random.default_rng(rng.randrange(2**32))
    centres = generator.normal(size=(200, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    big = Source.objects.create(
        organization=organization,
        kind=SourceKind.TEXT,
        title="bulk",
        chunk_count=size - size // 100,
        text_search_config="simple",
    )
    small = Source.objects.create(
        organization=organization,
        kind=SourceKind.TEXT,
        title="bot's 1%",
        chunk_count=size // 100,
        text_search_config="simple",
    )
    with connection.cursor() as cursor:
        # Loading row by row into a live HNSW index is slow; build it once afterwards (same definition).
        cursor.execute("DELETE FROM knowledge_chunk")
        cursor.execute("DROP INDEX IF EXISTS chunk_embedding_hnsw")
    for offset in range(0, size, 5000):
        n = min(5000, size - offset)
        vectors = centres[generator.integers(0, len(centres), n)] + generator.normal(
            scale=0.6 / DIM**0.5, size=(n, DIM)
        )
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        Chunk.objects.bulk_create(
            [
                Chunk(
                    organization=organization,
                    source=small if (offset + i) % 100 == 0 else big,
                    content=" ".join(rng.choices(words, weights, k=60)),
                    embedding=vectors[i].tolist(),
                    sentence_embeddings=sentence_vectors(generator, vectors[i]),
                    embedding_model="bench",
                )
                for i in range(n)
            ],
            batch_size=1000,
        )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE knowledge_chunk SET search_vector = to_tsvector('simple', content)")
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(
            "CREATE INDEX chunk_embedding_hnsw ON knowledge_chunk USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
    # Steady state before measuring (what autovacuum reaches a while after a bulk load): otherwise the
    # first queries compete with background vacuum and checkpoints of the freshly written tables.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE knowledge_chunk")
        cursor.execute("VACUUM ANALYZE knowledge_chunkterm")
    index_s = time.perf_counter() - started
    return big, small, centres.tolist(), words, weights, index_s


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(size: int, queries: int, rng: random.Random, ef_searches: list[int]) -> dict:
    from django.conf import settings
    from django.db import connection, transaction

    from accounts.models import Organization
    from knowledge.retrieval import fuse, ranked_ids, vector_hits

    settings.KNOWLEDGE_FTS_CONFIG = "simple"
    org = Organization.objects.create(name=f"bench {size}", slug=f"bench-{size}-{time.time_ns()}")
    started = time.perf_counter()
    big, small, centres, words, weights, index_s = make_corpus(org, size, rng)
    load_s = time.perf_counter() - started
    out = {"size": size, "load_s": load_s, "index_s": index_s, "rows": []}
    # The same questions for every setting: query words are Zipf-distributed like the text, minus the 50
    # most common (stop words, which the "english" configuration drops from real queries anyway).
    questions = []
    for _ in range(queries):
        centre = centres[rng.randrange(len(centres))]
        questions.append(
            (
                normalise([c + rng.gauss(0, 0.8 / DIM**0.5) for c in centre]),
                " ".join(rng.choices(words[50:], weights[50:], k=6)),
            )
        )
    cases = [(f"all chunks (HNSW, ef_search {ef})", [big.pk, small.pk], ef) for ef in ef_searches]
    cases.append(("1% of chunks (exact scan)", [small.pk], ef_searches[0]))
    for label, source_ids, ef in cases:
        settings.KNOWLEDGE_HNSW_EF_SEARCH = ef
        latencies, recalls = [], []
        for qvec, qtext in questions:
            t0 = time.perf_counter()
            ranked = ranked_ids(
                organization_id=org.pk, source_ids=source_ids, query=qtext, limit=40, query_vector=qvec
            )
            fuse(ranked)
            latencies.append((time.perf_counter() - t0) * 1000)
            with transaction.atomic(), connection.cursor() as cursor:
                # The same 40 candidates, found by an exact scan, rescored by their sentences alike.
                exact = vector_hits(
                    cursor,
                    organization_id=org.pk,
                    source_ids=source_ids,
                    query_vector=qvec,
                    limit=40,
                    exact=True,
                ).hits[:10]
            recalls.append(len({pk for pk, _ in exact} & set(ranked.vector[:10])) / 10)
        out["rows"].append(
            {
                "label": label,
                "p50": statistics.median(latencies),
                "p95": percentile(latencies, 0.95),
                "recall": statistics.mean(recalls),
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--ef-search", default="", help="comma-separated hnsw.ef_search values (default: the setting)"
    )
    args = parser.parse_args()
    setup_django()
    from django.conf import settings

    ef_searches = [int(v) for v in args.ef_search.split(",") if v] or [settings.KNOWLEDGE_HNSW_EF_SEARCH]
    rng = random.Random(42)
    from knowledge.embedders import get_embedder

    embedder = get_embedder()
    embedder.embed_query("warm up")
    times = []
    for i in range(50):
        t0 = time.perf_counter()
        embedder.embed_query(f"how long do I have to return boots number {i}?")
        times.append((time.perf_counter() - t0) * 1000)
    print(
        f"query embedding ({embedder.name}): p50 {statistics.median(times):.1f} ms, p95 {percentile(times, 0.95):.1f} ms"
    )
    print("| chunks | bot owns | hybrid SQL p50 | p95 | vector recall@10 vs exact |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        result = run(size, args.queries, rng, ef_searches)
        for r in result["rows"]:
            print(
                f"| {size:,} | {r['label']} | {r['p50']:.1f} ms | {r['p95']:.1f} ms | {r['recall']:.3f} |",
                flush=True,
            )
        print(
            f"(loading {size:,} chunks took {result['load_s']:.0f} s, of which tsvector + HNSW build "
            f"{result['index_s']:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
