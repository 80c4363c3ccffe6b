"""Compare the bundled embedders on speed and on English, Spanish and German questions.

    .venv/bin/python bench/embedder_choice.py [--distractors 400] [--models all-minilm-l6-v2-q8,...]

The corpus is SciFact's judged documents for the 19 claims in ``bench/data/scifact_translated_queries.jsonl``
(translated by hand) plus random distractors; each model embeds it and the claims in the three languages,
and vector-only nDCG@10 is computed per language. Speed: one query at a time (p50 over 100 questions)
and passages per second through embed_passages. Prints a Markdown table for BENCHMARKS.md.
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

    rows = []
    for name in args.models.split(",") if args.models else LOCAL_MODELS[:3]:
        embedder = get_embedder(name)
        embedder.embed_query("warm up")
        started = time.perf_counter()
        passages = np.array(embedder.embed_passages(texts))
        passages_per_s = len(texts) / (time.perf_counter() - started)
        timings = []
        for i in range(100):
            started = time.perf_counter()
            embedder.embed_query(f"question {i}: how long does the warranty on hiking boots last?")
            timings.append((time.perf_counter() - started) * 1000)
        scores = {}
        for language in ("en", "es", "de"):
            values = []
            for qid, text in queries.items():
                order = np.argsort(-(passages @ np.array(embedder.embed_query(text[language]))))
                values.append(ndcg_at_10([doc_ids[i] for i in order[:10]], dataset.qrels[qid]))
            scores[language] = statistics.mean(values)
        rows.append((name, statistics.median(timings), passages_per_s, scores))

    print(f"{len(queries)} claims, {len(doc_ids)} documents ({len(judged)} judged), {os.cpu_count()} cores\n")
    print("| model | query p50 | passages/s | nDCG@10 English | Spanish | German |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, query_ms, passages_per_s, s in rows:
        print(
            f"| `{name}` | {query_ms:.1f} ms | {passages_per_s:.1f} | {s['en']:.3f} | {s['es']:.3f} | {s['de']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
