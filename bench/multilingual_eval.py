"""Retrieval quality of embedding models side by side, in English and in other languages.

    .venv/bin/python bench/multilingual_eval.py [--models all-minilm-l6-v2-q8,multilingual-e5-small-q8]
        [--scifact-docs 1000] [--nfcorpus-docs 1000] [--parts lumen,scifact,nfcorpus]

For each model, on a database of its own (``parlor_bench_ml_<model>``, so each keeps its vectors between
runs): ``manage.py eval_conversations`` on conversations-lumen (its French and Italian conversations are
listed per language), and ``manage.py eval_retrieval`` on SciFact with its claims in English and translated
into Spanish and German (``bench/data/scifact_translated_queries.jsonl``: only those 19 claims, in all three
languages), and on NFCorpus. ``--*-docs`` subsets a corpus to the judged documents plus distractors (the
full corpora take hours to embed on two cores). Prints every command's output, then one table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = Path(os.environ.get("PARLOR_EVAL_DIR", ROOT.parent / "shared" / "eval"))
TRANSLATED = ROOT / "bench" / "data" / "scifact_translated_queries.jsonl"


def _run(command: list[str], env: dict[str, str]) -> str:
    print("$", " ".join(command[1:]), flush=True)
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    print(done.stdout, flush=True)
    return done.stdout


def _table_row(output: str, method: str) -> tuple[float, float]:
    match = re.search(rf"^\| {re.escape(method)} \| ([\d.]+) \| ([\d.]+) \|", output, re.MULTILINE)
    return (float(match.group(1)), float(match.group(2))) if match else (float("nan"), float("nan"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="all-minilm-l6-v2-q8,multilingual-e5-small-q8")
    parser.add_argument("--scifact-docs", type=int, default=1000)
    parser.add_argument("--nfcorpus-docs", type=int, default=1000)
    parser.add_argument("--parts", default="lumen,scifact,nfcorpus")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    sys.path.insert(0, str(ROOT))
    from config.embedded import embedded_database_url

    translated = [json.loads(line) for line in TRANSLATED.read_text().splitlines() if line.strip()]
    work = Path(tempfile.mkdtemp(prefix="parlor-ml-eval-"))
    query_files = {}
    scifact_queries = {
        row["_id"]: row["text"]
        for row in map(json.loads, (EVAL_DIR / "scifact" / "queries.jsonl").read_text().splitlines())
    }
    for language in ("en", "es", "de"):
        path = work / f"scifact-{language}.jsonl"
        path.write_text(
            "\n".join(
                json.dumps(
                    {
                        "_id": row["_id"],
                        "text": scifact_queries[row["_id"]] if language == "en" else row[language],
                    }
                )
                for row in translated
            )
        )
        query_files[language] = path
    manage = [sys.executable, str(ROOT / "manage.py")]
    weight = os.environ.get("KNOWLEDGE_VECTOR_WEIGHT", "0.6")
    figures: dict[str, dict[str, object]] = {}
    for model in args.models.split(","):
        env = dict(os.environ, EMBEDDING_MODEL=model)
        name = "parlor_bench_ml_" + re.sub(r"\W", "_", model)
        env["DATABASE_URL"] = embedded_database_url(ROOT / ".parlor" / "pgdata", name)
        subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT)
        row: dict[str, object] = {}
        if "lumen" in parts:
            lumen = EVAL_DIR / "conversations-lumen"
            out = _run([*manage, "eval_conversations", str(lumen), str(lumen / "conversations.jsonl"),
                        str(lumen / "abstain.jsonl"), "--sweep"], env)  # fmt: skip
            row["lumen"] = json.loads(out.strip().splitlines()[-1])
        if "scifact" in parts:
            for language, path in query_files.items():
                out = _run([*manage, "eval_retrieval", str(EVAL_DIR / "scifact"), "--max-docs",
                            str(args.scifact_docs), "--queries-file", str(path), "--weights", weight], env)  # fmt: skip
                row[f"scifact-19-{language}"] = {
                    "vector": _table_row(out, "vector")[0], "hybrid": _table_row(out, f"hybrid score w={float(weight):.2f}")[0],
                }  # fmt: skip
            out = _run([*manage, "eval_retrieval", str(EVAL_DIR / "scifact"), "--max-docs",
                        str(args.scifact_docs), "--weights", weight], env)  # fmt: skip
            row["scifact"] = {
                "vector": _table_row(out, "vector")[0], "fulltext": _table_row(out, "fulltext")[0],
                "hybrid": _table_row(out, f"hybrid score w={float(weight):.2f}")[0],
            }  # fmt: skip
        if "nfcorpus" in parts:
            out = _run([*manage, "eval_retrieval", str(EVAL_DIR / "nfcorpus"), "--max-docs",
                        str(args.nfcorpus_docs), "--weights", weight], env)  # fmt: skip
            row["nfcorpus"] = {
                "vector": _table_row(out, "vector")[0], "fulltext": _table_row(out, "fulltext")[0],
                "hybrid": _table_row(out, f"hybrid score w={float(weight):.2f}")[0],
            }  # fmt: skip
        figures[model] = row
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
