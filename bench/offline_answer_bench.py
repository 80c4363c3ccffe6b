"""What quoting sentences adds to an offline answer: time per answer on the retrieved passages.

    .venv/bin/python bench/offline_answer_bench.py [--corpus ../shared/eval/conversations-lumen] [--reps 20]

Ingests the corpus (BEIR ``corpus.jsonl``: ``title`` and ``text`` per document) as text sources into its
own embedded database (``parlor_bench_offline``), then for each question of ``conversations.jsonl``
(the ``standalone`` form) and ``abstain.jsonl`` (the last turn) retrieves the top 6 passages and measures:

* ``compose``: ``chatbots.llm.offline.compose`` on them (sentence split, near-duplicate check, choice);
* ``sentence similarities``: the passages' read with and without ``sentence_similarities`` (the same
  statement minus the array), i.e. what the search pays for the offline provider to choose by meaning;
* ``embed sentences``: for comparison, embedding every sentence of the 6 passages at answer time instead.

Prints p50/p95 in milliseconds and three sample answers; then, for the conversations with ``relevant``
documents, which articles answers cite at several ``PASSAGE_MARGIN`` values (how it was chosen).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django() -> None:
    if not os.environ.get("DATABASE_URL"):
        from config.embedded import embedded_database_url

        os.environ["DATABASE_URL"] = embedded_database_url(
            ROOT / ".parlor" / "pgdata", "parlor_bench_offline"
        )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"p50 {statistics.median(values):6.3f} ms   p95 {p95:6.3f} ms"


def ingest(corpus: Path, name: str = "Offline bench"):
    """A BEIR corpus as text sources of a new organization (shared with bench/rewrite_cost.py)."""
    from accounts.models import Organization
    from knowledge.models import Source, SourceKind
    from knowledge.services import source_ingest

    organization = Organization.objects.create(name=name, slug=f"bench-{time.time_ns()}")
    ids = []
    for line in (corpus / "corpus.jsonl").read_text().splitlines():
        doc = json.loads(line)
        source = Source.objects.create(
            organization=organization,
            kind=SourceKind.TEXT,
            title=doc.get("title") or doc["_id"],
            text=doc["text"],
        )
        source = source_ingest(source_id=source.pk)
        assert source.status == "ready", source.status_reason
        ids.append(source.pk)
    return organization, ids


def questions(corpus: Path) -> list[str]:
    out = []
    for name in ("conversations.jsonl", "abstain.jsonl"):
        path = corpus / name
        if path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                out.append(row.get("standalone") or row["turns"][-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "eval" / "conversations-lumen"))
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    from chatbots.llm.offline import compose
    from chatbots.models import Bot
    from knowledge.chunking import passage_sentences
    from knowledge.embedders import active_embedder, embed_search_query
    from knowledge.retrieval import PASSAGES_SQL, _vector_literal, hybrid_search

    corpus = Path(args.corpus)
    started = time.monotonic()
    organization, source_ids = ingest(corpus)
    print(f"ingested {len(source_ids)} documents in {time.monotonic() - started:.1f} s")
    bot = Bot(name="Bench")
    asked = questions(corpus)
    without_array = (  # the statement before sentence similarities were read
        "SELECT c.id, c.source_id, s.title, c.url, s.url, c.page, c.content, c.heading "
        "FROM knowledge_chunk c JOIN knowledge_source s ON s.id = c.source_id "
        "WHERE c.id = ANY(%(ids)s) AND c.organization_id = %(org)s"
    )
    compose_ms: list[float] = []
    read_with: list[float] = []
    read_without: list[float] = []
    embed_ms: list[float] = []
    samples = []
    passages_seen = []
    for question in asked:
        passages = hybrid_search(
            organization_id=organization.pk, source_ids=source_ids, query=question, top_k=6
        )
        passages_seen.append(len(passages))
        for _ in range(args.reps):
            begin = time.perf_counter()
            answer = compose(bot=bot, question=question, passages=passages)
            compose_ms.append((time.perf_counter() - begin) * 1000)
        params = {"ids": [p.chunk_id for p in passages], "org": organization.pk,
                  "vector": _vector_literal(embed_search_query(question))}  # fmt: skip
        with connection.cursor() as cursor:
            for _ in range(args.reps):
                for sql, sink in ((PASSAGES_SQL, read_with), (without_array, read_without)):
                    begin = time.perf_counter()
                    cursor.execute(sql, params)
                    cursor.fetchall()
                    sink.append((time.perf_counter() - begin) * 1000)
        sentences = [s for p in passages for s in (passage_sentences(p.content) or [p.content])]
        begin = time.perf_counter()
        active_embedder().embed_passages(sentences)
        embed_ms.append((time.perf_counter() - begin) * 1000)
        if len(samples) < 3:
            samples.append((question, answer.text, len(passages), len(answer.used_passages)))
    print(
        f"{len(asked)} questions, {statistics.mean(passages_seen):.1f} passages each, {args.reps} repetitions"
    )
    print(f"compose (quote choice, duplicates)      {percentiles(compose_ms)}")
    print(f"read passages with sentence similarities {percentiles(read_with)}")
    print(f"read passages without                    {percentiles(read_without)}")
    print(f"embed their sentences instead (1 rep)    {percentiles(embed_ms)}")
    for question, text, retrieved, quoted in samples:
        print(f"\n--- {question}  ({retrieved} retrieved, {quoted} quoted)\n{text}")
    margins(corpus, organization, source_ids)


def margins(corpus: Path, organization, source_ids: list[int]) -> None:
    """Per margin: in how many answers the article labelled relevant is cited, and how many others are."""
    from chatbots.llm import offline
    from knowledge.retrieval import hybrid_search

    ids_by_title = {}
    for line in (corpus / "corpus.jsonl").read_text().splitlines():
        doc = json.loads(line)
        ids_by_title[doc.get("title") or doc["_id"]] = doc["_id"]
    cases = []
    for line in (corpus / "conversations.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("relevant"):
            question = row.get("standalone") or row["turns"][-1]
            passages = hybrid_search(
                organization_id=organization.pk, source_ids=source_ids, query=question, top_k=6
            )
            cases.append((question, set(row["relevant"]), passages))
    print(
        f"\nPASSAGE_MARGIN on {len(cases)} questions: relevant article cited / other articles cited (of all)"
    )
    default = offline.PASSAGE_MARGIN
    try:
        for margin in (0.0, 0.05, 0.1, 0.15, 0.2, 10.0):
            offline.PASSAGE_MARGIN = margin
            right = others = shown = 0
            for question, relevant, passages in cases:
                cited = {
                    ids_by_title[q.passage.source_title] for q in offline.choose_quotes(question, passages)
                }
                right += bool(cited & relevant)
                others += len(cited - relevant)
                shown += len(cited)
            label = "none" if margin >= 10 else f"{margin:.2f}"
            print(f"  {label:>5}: {right} / {len(cases)}   {others} / {shown}")
    finally:
        offline.PASSAGE_MARGIN = default


if __name__ == "__main__":
    main()
