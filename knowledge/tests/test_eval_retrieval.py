from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from knowledge.evaluation import ndcg_at_10, recall_at_10

pytestmark = pytest.mark.django_db

CORPUS = {
    "d1": ("Returns", "Boots can be returned within 30 days with the receipt for a full refund."),
    "d2": ("Shipping", "We ship to Germany, Austria and Switzerland within two working days."),
    "d3": ("Warranty", "Every jacket carries a two-year warranty against manufacturing defects."),
    "d4": ("Care", "Wash merino socks cold and dry them flat to keep their shape."),
    "d5": ("Stores", "Our shops in Vienna and Zurich open at nine in the morning."),
}
QUERIES = {
    "q1": ("How long do I have to return my boots?", "d1"),
    "q2": ("Which warranty covers jackets?", "d3"),
}


def _beir(directory: Path) -> Path:
    directory.mkdir()
    (directory / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": doc, "title": t, "text": x}) + "\n" for doc, (t, x) in CORPUS.items())
    )
    (directory / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": qid, "text": text}) + "\n" for qid, (text, _) in QUERIES.items())
    )
    (directory / "qrels.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{qid}\t{doc}\t1\n" for qid, (_, doc) in QUERIES.items())
    )
    return directory


def _table(output: str) -> dict[str, tuple[float, float]]:
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[1].replace(".", "").isdigit():
            rows[cells[0]] = (float(cells[1]), float(cells[2]))
    return rows


def test_eval_retrieval_scores_every_method_through_the_real_ingestion(tmp_path):
    out = StringIO()
    call_command("eval_retrieval", str(_beir(tmp_path / "tiny")), "--weights", "0.5", stdout=out)
    rows = _table(out.getvalue())
    assert set(rows) == {"vector", "fulltext", "served to chat", "hybrid score w=0.50", "hybrid rank w=0.50"}
    # Each question has one obviously relevant document: every method puts it first.
    assert all(ndcg == 1.0 and recall == 1.0 for ndcg, recall in rows.values()), rows
    assert "5 documents, 2 queries" in out.getvalue()

    again = StringIO()  # a second run reuses the stored corpus instead of ingesting it again
    call_command("eval_retrieval", str(tmp_path / "tiny"), "--weights", "0.5", stdout=again)
    assert "part 1:" not in again.getvalue() and _table(again.getvalue()) == rows


def test_eval_retrieval_refuses_a_directory_that_is_not_a_beir_dataset(tmp_path):
    with pytest.raises(CommandError, match=r"missing qrels\.tsv"):
        (tmp_path / "corpus.jsonl").write_text("")
        (tmp_path / "queries.jsonl").write_text("")
        call_command("eval_retrieval", str(tmp_path))


def test_ndcg_and_recall_reward_relevant_documents_ranked_early():
    rels = {"a": 1, "b": 1}
    assert ndcg_at_10(["a", "b", "c"], rels) == pytest.approx(1.0)
    assert ndcg_at_10(["c", "a", "b"], rels) < ndcg_at_10(["a", "c", "b"], rels) < 1.0
    assert ndcg_at_10(["c", "d"], rels) == 0.0
    assert recall_at_10(["a", "c"], rels) == 0.5


def test_eval_retrieval_reports_two_models_side_by_side_switching_the_index(tmp_path):
    from knowledge.embedders import active_model_name

    out = StringIO()
    models = "all-minilm-l6-v2-q8,multilingual-e5-small-q8"
    call_command(
        "eval_retrieval", str(_beir(tmp_path / "tiny")), "--weights", "0.5", "--models", models, stdout=out
    )
    lines = out.getvalue().splitlines()
    header = next(line for line in lines if line.startswith("| method |"))
    assert header == (
        "| method | all-minilm-l6-v2-q8 nDCG@10 | Recall@10 | multilingual-e5-small-q8 nDCG@10 | Recall@10 |"
    )
    vector = next(line for line in lines if line.startswith("| vector |"))
    assert [float(cell) for cell in vector.strip("|").split("|")[1:]] == [1.0, 1.0, 1.0, 1.0]
    assert active_model_name() == "multilingual-e5-small-q8"  # the last model compared stays active
