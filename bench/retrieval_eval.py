"""Run ``manage.py eval_retrieval`` on the BEIR datasets in ../shared/eval against a dedicated database.

    .venv/bin/python bench/retrieval_eval.py [--max-docs N] [--max-queries N] [dataset ...]

Uses its own embedded database (``parlor_bench_knowledge``) so development data is untouched; vectors
stay stored between runs, so only the first run pays for embedding. Skips datasets that are absent.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = Path(os.environ.get("PARLOR_EVAL_DIR", ROOT.parent / "shared" / "eval"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("datasets", nargs="*", default=["scifact", "nfcorpus"])
    parser.add_argument("--max-docs", type=int)
    parser.add_argument("--max-queries", type=int)
    parser.add_argument("--weights", default="0.3,0.4,0.5,0.6,0.7")
    args = parser.parse_args()
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        sys.path.insert(0, str(ROOT))
        from config.embedded import embedded_database_url

        env["DATABASE_URL"] = embedded_database_url(ROOT / ".parlor" / "pgdata", "parlor_bench_knowledge")
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT)
    for name in args.datasets:
        directory = EVAL_DIR / name
        if not (directory / "corpus.jsonl").is_file():
            print(f"{directory} not found; skipped")
            continue
        command = [*manage, "eval_retrieval", str(directory), "--weights", args.weights]
        if args.max_docs:
            command += ["--max-docs", str(args.max_docs)]
        if args.max_queries:
            command += ["--max-queries", str(args.max_queries)]
        subprocess.run(command, env=env, check=True, cwd=ROOT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
