"""Retrieval evaluation on BEIR-format datasets (corpus.jsonl, queries.jsonl, qrels.tsv).

The corpus goes through the real ingestion (chunking, embedding, storage) into one source of an
evaluation organization, and queries through the real retrieval functions; a document's rank is the rank
of its best chunk. Re-running re-uses stored vectors of unchanged chunks, so only the first run embeds.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from knowledge.parsing import Block
from knowledge.retrieval import RankedIds, fuse, ranked_ids
from knowledge.selectors import knowledge_for_question


@dataclass
class Dataset:
    name: str
    corpus: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(
    directory: Path, *, max_docs: int | None = None, max_queries: int | None = None, seed: int = 13
) -> Dataset:
    qrels: dict[str, dict[str, int]] = {}
    with open(directory / "qrels.tsv", encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            query_id, doc_id, score = line.rstrip("\n").split("\t")
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    queries = {}
    with open(directory / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["_id"] in qrels:
                queries[row["_id"]] = row["text"]
    if max_queries and len(queries) > max_queries:
        keep = sorted(queries)[:max_queries]
        queries = {qid: queries[qid] for qid in keep}
    qrels = {qid: qrels[qid] for qid in queries}
    corpus = {}
    with open(directory / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            corpus[row["_id"]] = (row.get("title") or "", row.get("text") or "")
    if max_docs and len(corpus) > max_docs:
        # Subset: every judged document of the kept queries plus random distractors up to max_docs.
        judged = {doc for rels in qrels.values() for doc in rels if doc in corpus}
        others = sorted(set(corpus) - judged)
        random.Random(seed).shuffle(others)
        keep_ids = judged | set(others[: max(0, max_docs - len(judged))])
        corpus = {doc: corpus[doc] for doc in corpus if doc in keep_ids}
    return Dataset(name=directory.name, corpus=corpus, queries=queries, qrels=qrels)


def corpus_blocks(dataset: Dataset) -> list[Block]:
    return [
        Block(text=text or title, heading=title[:500], url=f"beir:{doc_id}")
        for doc_id, (title, text) in dataset.corpus.items()
    ]


def ndcg_at_10(ranking: list[str], rels: dict[str, int]) -> float:
    dcg = sum((2 ** rels.get(doc, 0) - 1) / math.log2(i + 2) for i, doc in enumerate(ranking[:10]))
    ideal = sorted(rels.values(), reverse=True)[:10]
    idcg = sum((2**rel - 1) / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_10(ranking: list[str], rels: dict[str, int]) -> float:
    relevant = {doc for doc, rel in rels.items() if rel >= 1}
    return len(relevant & set(ranking[:10])) / len(relevant) if relevant else 0.0


@dataclass
class MethodScores:
    ndcg: list[float] = field(default_factory=list)
    recall: list[float] = field(default_factory=list)

    @property
    def mean_ndcg(self) -> float:
        return sum(self.ndcg) / max(1, len(self.ndcg))

    @property
    def mean_recall(self) -> float:
        return sum(self.recall) / max(1, len(self.recall))


def _doc_ranking(chunk_ids: list[int], doc_of: dict[int, str]) -> list[str]:
    seen: list[str] = []
    for chunk_id in chunk_ids:
        doc = doc_of.get(chunk_id)
        if doc is not None and doc not in seen:
            seen.append(doc)
    return seen


FUSIONS = ("score", "rank")
SERVED = "served to chat"
SERVED_TOP_K = 30  # passages, so that ten distinct documents are usually among them


def evaluate(
    *,
    dataset: Dataset,
    organization_id: int,
    source_ids: list[int],
    doc_of: dict[int, str],
    vector_weights: tuple[float, ...] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, MethodScores], float]:
    """Scores per method ("vector", "fulltext", "hybrid <fusion> w=…", and "served": what the chat pipeline
    gets from ``knowledge_for_question`` with the configured settings) and the mean seconds per query."""
    results: dict[str, MethodScores] = {
        "vector": MethodScores(), "fulltext": MethodScores(), SERVED: MethodScores(),
    }  # fmt: skip
    weights = vector_weights or (settings.KNOWLEDGE_VECTOR_WEIGHT,)
    hybrids = [(fusion, weight) for fusion in FUSIONS for weight in weights]
    for fusion, weight in hybrids:
        results[f"hybrid {fusion} w={weight:.2f}"] = MethodScores()
    started = time.perf_counter()
    for n, (query_id, text) in enumerate(dataset.queries.items(), start=1):
        ranked: RankedIds = ranked_ids(
            organization_id=organization_id,
            source_ids=source_ids,
            query=text,
            limit=settings.KNOWLEDGE_CANDIDATES,  # as many as a chat message ranks
        )
        rels = dataset.qrels[query_id]
        served = knowledge_for_question(
            organization_id=organization_id, source_ids=source_ids, question=text, top_k=SERVED_TOP_K
        )
        rankings = {
            "vector": _doc_ranking(ranked.vector, doc_of),
            "fulltext": _doc_ranking(ranked.lexical, doc_of),
            SERVED: _doc_ranking([passage.chunk_id for passage in served.passages], doc_of),
        }
        for fusion, weight in hybrids:
            fused = fuse(ranked, vector_weight=weight, method=fusion)
            order = sorted(fused, key=lambda chunk_id: fused[chunk_id], reverse=True)
            rankings[f"hybrid {fusion} w={weight:.2f}"] = _doc_ranking(order, doc_of)
        for method, ranking in rankings.items():
            results[method].ndcg.append(ndcg_at_10(ranking, rels))
            results[method].recall.append(recall_at_10(ranking, rels))
        if n % 100 == 0:
            log(f"  {n}/{len(dataset.queries)} queries")
    elapsed = (time.perf_counter() - started) / max(1, len(dataset.queries))
    return results, elapsed
