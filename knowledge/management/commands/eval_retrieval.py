"""``manage.py eval_retrieval <dir>``: nDCG@10 and Recall@10 of vector, full-text and hybrid retrieval.

``--models a,b``: the same figures for several embedding models side by side. The evaluation database's
index is switched to each model in turn the way ``knowledge_reembed`` switches a deployment (the current
vectors serve until the new ones are complete), and the last model stays active.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from knowledge.embedders import active_model_name
from knowledge.evaluation import evaluate, ingest_corpus, load_beir
from knowledge.services import embeddings_rebuild


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
        parser.add_argument(
            "--models",
            default=None,
            help="Comma-separated embedding models to compare side by side (default: the index's own). "
            "Re-embeds this database's whole index with each in turn; the last one stays active.",
        )

    def handle(
        self, *args, directory: Path, max_docs, max_queries, weights: str, queries_file, models, **options
    ):
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
        compared = models.split(",") if models else [active_model_name()]
        figures = {}
        for model in compared:
            if model != active_model_name():
                self.stdout.write(f"switching the index to {model}...")
                embeddings_rebuild(model=model, log=self.stdout.write)
            figures[model] = evaluate(
                dataset=dataset, organization_id=organization_id, source_ids=source_ids, doc_of=doc_of,
                vector_weights=vector_weights, log=self.stdout.write,
            )  # fmt: skip
        if len(compared) == 1:
            results, per_query = figures[compared[0]]
            self.stdout.write("\n| method | nDCG@10 | Recall@10 |\n| --- | ---: | ---: |")
            for method, scores in results.items():
                self.stdout.write(f"| {method} | {scores.mean_ndcg:.3f} | {scores.mean_recall:.3f} |")
            self.stdout.write(
                f"\nmean time per query (all methods, incl. query embedding): {per_query * 1000:.1f} ms"
            )
            return
        self.stdout.write(
            "\n| method | "
            + " | ".join(f"{model} nDCG@10 | Recall@10" for model in compared)
            + " |\n| --- |"
            + " ---: | ---: |" * len(compared)
        )
        for method in figures[compared[0]][0]:
            cells = []
            for model in compared:
                scores = figures[model][0][method]
                cells += [f"{scores.mean_ndcg:.3f}", f"{scores.mean_recall:.3f}"]
            self.stdout.write(f"| {method} | " + " | ".join(cells) + " |")
        self.stdout.write(
            "\nmean time per query (all methods, incl. query embedding): "
            + ", ".join(f"{model} {figures[model][1] * 1000:.1f} ms" for model in compared)
        )
