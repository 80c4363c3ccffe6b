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

from knowledge.embedders import judges_language, min_relevance, serving_model_name
from knowledge.parsing import Block
from knowledge.questions import question_shape, text_language
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
    corpus = load_corpus(directory / "corpus.jsonl")
    if max_docs and len(corpus) > max_docs:
        # Subset: every judged document of the kept queries plus random distractors up to max_docs.
        judged = {doc for rels in qrels.values() for doc in rels if doc in corpus}
        others = sorted(set(corpus) - judged)
        random.Random(seed).shuffle(others)
        keep_ids = judged | set(others[: max(0, max_docs - len(judged))])
        corpus = {doc: corpus[doc] for doc in corpus if doc in keep_ids}
    return Dataset(name=directory.name, corpus=corpus, queries=queries, qrels=qrels)


def load_corpus(path: Path) -> dict[str, tuple[str, str]]:
    """A BEIR ``corpus.jsonl``: id -> (title, text)."""
    corpus = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                corpus[row["_id"]] = (row.get("title") or "", row.get("text") or "")
    return corpus


def corpus_blocks(dataset: Dataset) -> list[Block]:
    return [
        Block(text=text or title, heading=title[:500], url=f"beir:{doc_id}")
        for doc_id, (title, text) in dataset.corpus.items()
    ]


PART_DOCS = 100


def ingest_corpus(
    dataset: Dataset, *, log: Callable[[str], None] = print
) -> tuple[int, list[int], dict[int, str]]:
    """The corpus stored through the real ingestion in an evaluation organization of its own, as sources
    of ``PART_DOCS`` documents each committed when embedded: an interrupted run resumes where it stopped,
    and a finished part is not ingested again. Returns the organization id, the source ids and each
    chunk's document id."""
    from accounts.models import Organization
    from knowledge.models import Chunk, Source, SourceKind
    from knowledge.services import source_ingest_blocks

    slug = f"eval-{dataset.name}".lower()[:80]
    organization, _ = Organization.objects.get_or_create(
        slug=slug, defaults={"name": f"Evaluation {dataset.name}"}
    )
    blocks = corpus_blocks(dataset)
    started = time.perf_counter()
    source_ids = []
    for number, offset in enumerate(range(0, len(blocks), PART_DOCS), start=1):
        part = blocks[offset : offset + PART_DOCS]
        title = f"BEIR {dataset.name} part {number} ({part[0].url}..{part[-1].url}, {len(part)} docs)"
        source, _ = Source.objects.get_or_create(
            organization=organization, title=title[:255], defaults={"kind": SourceKind.TEXT}
        )
        if source.status != "ready":
            source = source_ingest_blocks(source=source, blocks=part, progress=lambda percent: None)
            log(f"  part {number}: {source.chunk_count} chunks ({time.perf_counter() - started:.0f}s)")
        source_ids.append(source.pk)
    chunks = Chunk.objects.filter(source_id__in=source_ids)
    log(f"corpus ready: {chunks.count()} chunks; {time.perf_counter() - started:.1f}s")
    doc_of = {pk: url.removeprefix("beir:") for pk, url in chunks.values_list("pk", "url")}
    return organization.pk, source_ids, doc_of


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
        served = knowledge_for_question(  # ranking only: nothing is cut by the relevance threshold
            organization_id=organization_id,
            source_ids=source_ids,
            question=text,
            top_k=SERVED_TOP_K,
            min_relevance=0.0,
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


# --- conversations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConversation:
    id: str
    turns: list[str]  # the user's messages, oldest first
    relevant: list[str]  # documents that answer the last turn; empty: the right answer is to abstain
    standalone: str = ""  # the last turn rewritten to stand on its own, if the set has one


def load_conversations(paths: list[Path]) -> list[EvalConversation]:
    conversations = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            turns = row.get("turns")
            if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
                raise ValueError(f"{path.name} line {number}: 'turns' must be a non-empty list of texts")
            conversations.append(
                EvalConversation(
                    id=str(row.get("_id", f"{path.stem}-{number}")), turns=turns,
                    relevant=[str(doc) for doc in row.get("relevant") or []],
                    standalone=str(row.get("standalone") or ""),
                )
            )  # fmt: skip
    return conversations


@dataclass
class RankScores:
    hit1: list[float] = field(default_factory=list)
    hit3: list[float] = field(default_factory=list)
    ndcg: list[float] = field(default_factory=list)

    def add(self, ranking: list[str], relevant: list[str]) -> None:
        self.hit1.append(float(bool(set(ranking[:1]) & set(relevant))))
        self.hit3.append(float(bool(set(ranking[:3]) & set(relevant))))
        self.ndcg.append(ndcg_at_10(ranking, dict.fromkeys(relevant, 1)))

    def summary(self) -> dict[str, float]:
        def mean(values: list[float]) -> float:
            return round(sum(values) / len(values), 3) if values else 0.0

        return {
            "hit@1": mean(self.hit1),
            "hit@3": mean(self.hit3),
            "ndcg@10": mean(self.ndcg),
            "n": len(self.hit1),
        }


CONVERSATION_TOP_K = 30  # passages ranked per question, so that ten distinct documents are usually among them


def evaluate_conversations(
    *,
    conversations: list[EvalConversation],
    organization_id: int,
    source_ids: list[int],
    doc_of: dict[int, str],
    min_relevance: float | None = None,
) -> dict[str, dict[str, float]]:
    """Retrieval for the last turn three ways (in its conversation, alone, as its standalone rewrite), and
    the abstention decision in the conversation, all through ``knowledge_for_question`` as chat calls it.
    ``min_relevance``: the threshold under which nothing counts as covered (default: the embedder's)."""

    def ranking(question: str, context: list[str]) -> list[str]:
        found = knowledge_for_question(
            organization_id=organization_id, source_ids=source_ids, question=question, context=context,
            top_k=CONVERSATION_TOP_K, min_relevance=0.0,
        )  # fmt: skip
        return _doc_ranking([passage.chunk_id for passage in found.passages], doc_of)

    ways = {"in_conversation": RankScores(), "last_turn_only": RankScores(), "standalone": RankScores()}
    # The same per language of the conversation (multilingual retrieval: each language against English).
    by_language: dict[str, dict[str, RankScores]] = {}
    abstain = {"out_of_scope": 0, "out_of_scope_refused": 0, "in_scope": 0, "in_scope_refused": 0}
    for conversation in conversations:
        question, context = conversation.turns[-1], conversation.turns[:-1]
        decision = knowledge_for_question(
            organization_id=organization_id, source_ids=source_ids, question=question, context=context,
            top_k=1, min_relevance=min_relevance,
        )  # fmt: skip
        refused = not decision.passages
        scope = "in_scope" if conversation.relevant else "out_of_scope"
        abstain[scope] += 1
        abstain[f"{scope}_refused"] += int(refused)
        if not conversation.relevant:
            continue
        language = by_language.setdefault(
            text_language(" ".join(conversation.turns)), {way: RankScores() for way in ways}
        )
        rankings = {"in_conversation": ranking(question, context), "last_turn_only": ranking(question, [])}
        if conversation.standalone:
            rankings["standalone"] = ranking(conversation.standalone, [])
        for way, ranked in rankings.items():
            ways[way].add(ranked, conversation.relevant)
            language[way].add(ranked, conversation.relevant)
    return {
        **{way: scores.summary() for way, scores in ways.items()},
        "abstain": abstain,
        "by_language": {
            name: {way: scores.summary() for way, scores in per_way.items()}
            for name, per_way in sorted(by_language.items())
        },
    }


def relevance_sweep(
    *, conversations: list[EvalConversation], organization_id: int, source_ids: list[int], step: float = 0.01
) -> list[tuple[float, int, int]]:
    """For thresholds from 0 to 1: how many out-of-scope and in-scope conversations each would refuse
    (nothing as relevant as the threshold), to pick a model's threshold by measurement. A question in
    another language keeps an English-only model's own threshold for it (``min_relevance(english=False)``)."""
    model = serving_model_name()
    best: list[tuple[bool, float, float | None]] = []
    for conversation in conversations:
        question = conversation.turns[-1]
        found = knowledge_for_question(
            organization_id=organization_id, source_ids=source_ids, question=question,
            context=conversation.turns[:-1], top_k=1, min_relevance=0.0,
        )  # fmt: skip
        fixed = None
        if judges_language(model) and not question_shape(question).english:
            fixed = min_relevance(model, english=False)
        best.append(
            (bool(conversation.relevant), max((p.similarity for p in found.passages), default=0.0), fixed)
        )
    rows = []
    for n in range(round(1 / step) + 1):
        threshold = round(n * step, 4)
        refused = [(in_scope, top < (threshold if fixed is None else fixed)) for in_scope, top, fixed in best]
        rows.append((
            threshold,
            sum(1 for in_scope, no in refused if not in_scope and no),
            sum(1 for in_scope, no in refused if in_scope and no),
        ))  # fmt: skip
    return rows
