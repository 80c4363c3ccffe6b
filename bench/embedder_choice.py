"""Compare the bundled embedders on speed and on English, Spanish and German questions.

    .venv/bin/python bench/embedder_choice.py [--distractors 400] [--models all-minilm-l6-v2-q8,...]

The corpus is SciFact's judged documents for the 19 claims in ``bench/data/scifact_translated_queries.jsonl``
(translated by hand) plus random distractors; each model embeds it and the claims in the three languages,
and vector-only nDCG@10 is computed per language. Speed: one query at a time (p50 over 100 questions)
and passages per second through embed_passages, the models taking turns (ten passages, one question) so
that a shared machine's changing load falls on all of them alike; the ratios to the first model are the
figures to compare. Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCIFACT = Path(os.environ.get("PARLOR_EVAL_DIR", ROOT.parent / "shared" / "eval")) / "scifact"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--distractors", type=int, default=400)
    parser.add_argument("--models", default="", help="comma-separated (default: both MiniLM forms and e5)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import numpy as np

    from knowledge.embedders import LOCAL_MODELS, get_embedder
    from knowledge.evaluation import load_beir, ndcg_at_10

    dataset = load_beir(SCIFACT)
    translated = [json.loads(line) for line in (ROOT / "bench/data/scifact_translated_queries.jsonl").open()]
    queries = {
        row["_id"]: {"en": dataset.queries[row["_id"]], "es": row["es"], "de": row["de"]}
        for row in translated
    }
    judged = sorted({doc for qid in queries for doc in dataset.qrels[qid]})
    others = sorted(set(dataset.corpus) - set(judged))
    random.Random(13).shuffle(others)
    doc_ids = judged + others[: args.distractors]
    texts = [f"{dataset.corpus[d][0]}\n{dataset.corpus[d][1]}" for d in doc_ids]

    names = args.models.split(",") if args.models else list(LOCAL_MODELS[:3])
    embedders = {name: get_embedder(name) for name in names}
    for embedder in embedders.values():
        embedder.embed_query("warm up")
    # The machine is shared and its load changes by the minute: the models take turns, ten passages and
    # one question at a time, so each figure is measured under the same load as the others.
    passages: dict[str, list] = {name: [] for name in names}
    passage_seconds = dict.fromkeys(names, 0.0)
    for offset in range(0, len(texts), 10):
        for name, embedder in embedders.items():
            started = time.perf_counter()
            passages[name].extend(embedder.embed_passages(texts[offset : offset + 10]))
            passage_seconds[name] += time.perf_counter() - started
    timings: dict[str, list[float]] = {name: [] for name in names}
    for i in range(100):
        for name, embedder in embedders.items():
            started = time.perf_counter()
            embedder.embed_query(f"question {i}: how long does the warranty on hiking boots last?")
            timings[name].append((time.perf_counter() - started) * 1000)
    rows = []
    for name, embedder in embedders.items():
        matrix = np.array(passages[name])
        scores = {}
        for language in ("en", "es", "de"):
            values = []
            for qid, text in queries.items():
                order = np.argsort(-(matrix @ np.array(embedder.embed_query(text[language]))))
                values.append(ndcg_at_10([doc_ids[i] for i in order[:10]], dataset.qrels[qid]))
            scores[language] = statistics.mean(values)
        rows.append((name, statistics.median(timings[name]), len(texts) / passage_seconds[name], scores))

    print(f"{len(queries)} claims, {len(doc_ids)} documents ({len(judged)} judged), {os.cpu_count()} cores\n")
    base_query, base_passages = rows[0][1], rows[0][2]
    print(f"| model | query p50 | passages/s | vs `{rows[0][0]}` (query time, passages/s) "
          "| nDCG@10 English | Spanish | German |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, query_ms, passages_per_s, s in rows:
        print(
            f"| `{name}` | {query_ms:.1f} ms | {passages_per_s:.1f} | "
            f"{query_ms / base_query:.2f}x, {passages_per_s / base_passages:.2f}x | "
            f"{s['en']:.3f} | {s['es']:.3f} | {s['de']:.3f} |"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
