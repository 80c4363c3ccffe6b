"""``manage.py eval_retrieval <dir>``: nDCG@10 and Recall@10 of vector, full-text and hybrid retrieval."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from knowledge.evaluation import evaluate, ingest_corpus, load_beir


class Command(BaseCommand):
    help = "Evaluate retrieval on a BEIR-format dataset through the real ingestion and retrieval code."

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument(
            "--max-docs", type=int, default=None, help="Subset: judged documents + distractors."
        )
        parser.add_argument("--max-queries", type=int, default=None)
        parser.add_argument(
            "--queries-file",
            type=Path,
            default=None,
            help="JSONL {_id, text}: evaluate only these queries, with these texts (e.g. translations).",
        )
        parser.add_argument(
            "--weights",
            default=None,
            help="Comma-separated vector weights for the fusion, e.g. 0.5,0.6,0.7 (default: KNOWLEDGE_VECTOR_WEIGHT)",
        )

    def handle(self, *args, directory: Path, max_docs, max_queries, weights: str, queries_file, **options):
        for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv"):
            if not (directory / name).is_file():
                raise CommandError(f"{directory} is not a BEIR dataset (missing {name}).")
        dataset = load_beir(directory, max_docs=max_docs, max_queries=max_queries)
        if queries_file:
            replaced = {
                row["_id"]: row["text"]
                for row in map(json.loads, queries_file.read_text().splitlines())
                if row
            }
            dataset.queries = {qid: text for qid, text in replaced.items() if qid in dataset.qrels}
        self.stdout.write(f"{dataset.name}: {len(dataset.corpus)} documents, {len(dataset.queries)} queries")
        organization_id, source_ids, doc_of = ingest_corpus(dataset, log=self.stdout.write)
        vector_weights = tuple(float(w) for w in weights.split(",")) if weights else None
        results, per_query = evaluate(
            dataset=dataset, organization_id=organization_id, source_ids=source_ids, doc_of=doc_of,
            vector_weights=vector_weights, log=self.stdout.write,
        )  # fmt: skip
        self.stdout.write("\n| method | nDCG@10 | Recall@10 |\n| --- | ---: | ---: |")
        for method, scores in results.items():
            self.stdout.write(f"| {method} | {scores.mean_ndcg:.3f} | {scores.mean_recall:.3f} |")
        self.stdout.write(
            f"\nmean time per query (all methods, incl. query embedding): {per_query * 1000:.1f} ms"
        )
