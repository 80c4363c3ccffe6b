"""`manage.py eval_conversations`: conversational retrieval and abstention through the code chat uses."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db

CORPUS = [
    {
        "_id": "refunds",
        "title": "Refunds",
        "text": "A refund for an international order takes up to 14 days.",
    },
    {"_id": "points", "title": "Loyalty points", "text": "Points expire after 18 months without an order."},
    {"_id": "cards", "title": "Gift cards", "text": "A gift card is valid for two years from purchase."},
]
CONVERSATIONS = [
    {"_id": "c1", "turns": ["How do refunds work?", "and for international orders how long?"],
     "relevant": ["refunds"], "standalone": "How long does a refund for an international order take?"},
    {"_id": "c2", "turns": ["Tell me about loyalty points", "do they expire?"], "relevant": ["points"]},
    {"_id": "a1", "turns": ["What is the capital of Australia?"], "relevant": []},
]  # fmt: skip


def _write(tmp_path):
    corpus_dir = tmp_path / "help"
    corpus_dir.mkdir()
    (corpus_dir / "corpus.jsonl").write_text("\n".join(json.dumps(row) for row in CORPUS))
    conversations = tmp_path / "conversations.jsonl"
    conversations.write_text("\n".join(json.dumps(row) for row in CONVERSATIONS))
    return corpus_dir, conversations


def test_figures_for_each_way_of_searching_and_for_abstention(tmp_path):
    corpus_dir, conversations = _write(tmp_path)
    out = StringIO()
    call_command("eval_conversations", str(corpus_dir), str(conversations), stdout=out)
    figures = json.loads(out.getvalue().strip().splitlines()[-1])
    assert set(figures) == {"in_conversation", "last_turn_only", "standalone", "abstain", "by_language"}
    assert figures["in_conversation"]["hit@1"] == 1.0 and figures["in_conversation"]["n"] == 2
    assert figures["standalone"]["n"] == 1  # only c1 has a rewrite
    assert figures["abstain"] == {"out_of_scope": 1, "out_of_scope_refused": 1, "in_scope": 2,
                                  "in_scope_refused": 0}  # fmt: skip
    assert "| in_conversation |" in out.getvalue()


def test_the_sweep_shows_what_each_threshold_refuses(tmp_path):
    corpus_dir, conversations = _write(tmp_path)
    out = StringIO()
    call_command("eval_conversations", str(corpus_dir), str(conversations), "--sweep", stdout=out)
    rows = [
        line for line in out.getvalue().splitlines() if line.startswith("| 0.") or line.startswith("| 1.")
    ]
    # The out-of-scope question is the least relevant: the first threshold that refuses anything refuses it
    # alone; at 1 everything is refused.
    assert rows[0].endswith("| 1/1 | 0/2 |") and rows[-1] == "| 1.00 | 1/1 | 2/2 |"


def test_a_threshold_of_one_refuses_everything(tmp_path):
    corpus_dir, conversations = _write(tmp_path)
    out = StringIO()
    call_command(
        "eval_conversations", str(corpus_dir), str(conversations), "--min-relevance", "1", stdout=out
    )
    abstain = json.loads(out.getvalue().strip().splitlines()[-1])["abstain"]
    assert abstain["in_scope_refused"] == 2 and abstain["out_of_scope_refused"] == 1


def test_bad_input_files_are_refused_with_a_reason(tmp_path):
    corpus_dir, conversations = _write(tmp_path)
    with pytest.raises(CommandError, match=r"corpus\.jsonl"):
        call_command("eval_conversations", str(tmp_path), str(conversations))
    conversations.write_text(json.dumps({"_id": "x", "turns": "not a list"}))
    with pytest.raises(CommandError, match="turns"):
        call_command("eval_conversations", str(corpus_dir), str(conversations))
