"""``manage.py eval_conversations CORPUS_DIR CONVERSATIONS_JSONL...``: conversational retrieval and abstention.

Each conversation line is ``{"_id", "turns": [user texts], "relevant": [corpus ids for the last turn],
"standalone": "the last turn on its own"?}``; an empty ``relevant`` means the right behaviour is to say that
the knowledge does not cover the question. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from knowledge.evaluation import (
    Dataset,
    evaluate_conversations,
    ingest_corpus,
    load_conversations,
    load_corpus,
    relevance_sweep,
)


class Command(BaseCommand):
    help = "Evaluate conversational retrieval and abstention through the code chat uses."

    def add_arguments(self, parser):
        parser.add_argument("corpus_dir", type=Path)
        parser.add_argument("conversations", type=Path, nargs="+", help="JSONL files of conversations")
        parser.add_argument(
            "--min-relevance", type=float, default=None,
            help="Relevance under which a question counts as not covered (default: the embedder's).",
        )  # fmt: skip
        parser.add_argument(
            "--sweep", action="store_true",
            help="Also print, per threshold, how many out-of-scope and in-scope conversations it refuses.",
        )  # fmt: skip

    def handle(self, *args, corpus_dir: Path, conversations: list[Path], min_relevance, sweep, **options):
        if not (corpus_dir / "corpus.jsonl").is_file():
            raise CommandError(f"{corpus_dir} has no corpus.jsonl (BEIR format).")
        for path in conversations:
            if not path.is_file():
                raise CommandError(f"{path} does not exist.")
        try:
            dialogues = load_conversations(conversations)
        except (ValueError, KeyError) as exc:
            raise CommandError(f"Bad conversations file: {exc}") from None
        dataset = Dataset(
            name=corpus_dir.name, corpus=load_corpus(corpus_dir / "corpus.jsonl"), queries={}, qrels={}
        )
        self.stdout.write(f"{dataset.name}: {len(dataset.corpus)} documents, {len(dialogues)} conversations")
        organization_id, source_ids, doc_of = ingest_corpus(dataset, log=self.stdout.write)
        results = evaluate_conversations(
            conversations=dialogues, organization_id=organization_id, source_ids=source_ids, doc_of=doc_of,
            min_relevance=min_relevance,
        )  # fmt: skip
        self.stdout.write(
            "\n| retrieval of the last turn | n | hit@1 | hit@3 | nDCG@10 |\n| --- | ---: | ---: | ---: | ---: |"
        )
        for way in ("in_conversation", "last_turn_only", "standalone"):
            row = results[way]
            self.stdout.write(
                f"| {way} | {row['n']} | {row['hit@1']:.3f} | {row['hit@3']:.3f} | {row['ndcg@10']:.3f} |"
            )
        self.stdout.write(
            "\n| language of the conversation | n | in conversation hit@1 | nDCG@10 | standalone hit@1 | nDCG@10 |"
            "\n| --- | ---: | ---: | ---: | ---: | ---: |"
        )
        for language, per_way in results["by_language"].items():
            talk, alone = per_way["in_conversation"], per_way["standalone"]
            self.stdout.write(
                f"| {language} | {talk['n']} | {talk['hit@1']:.3f} | {talk['ndcg@10']:.3f} | "
                f"{alone['hit@1']:.3f} | {alone['ndcg@10']:.3f} |"
            )
        if sweep:
            rows = relevance_sweep(
                conversations=dialogues, organization_id=organization_id, source_ids=source_ids
            )
            out_of_scope = sum(1 for d in dialogues if not d.relevant)
            self.stdout.write(
                "\n| threshold | out-of-scope refused | in-scope refused |\n| ---: | ---: | ---: |"
            )
            for threshold, refused_out, refused_in in rows:
                if refused_out > 0 or 0 < refused_in < len(dialogues) - out_of_scope:
                    self.stdout.write(f"| {threshold:.2f} | {refused_out}/{out_of_scope} | "
                                      f"{refused_in}/{len(dialogues) - out_of_scope} |")  # fmt: skip
        abstain = results["abstain"]
        self.stdout.write(
            f"\nrefused: {abstain['out_of_scope_refused']} of {abstain['out_of_scope']} out-of-scope, "
            f"{abstain['in_scope_refused']} of {abstain['in_scope']} in-scope"
        )
        self.stdout.write(json.dumps(results))
