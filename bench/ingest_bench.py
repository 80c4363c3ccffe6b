"""Ingestion throughput: a generated 300-page PDF and a 10 MB CSV through parse → chunk → embed.

    .venv/bin/python bench/ingest_bench.py [--pages 300] [--csv-mb 10] [--embed-sample 64] [--full]

Parse and chunk run in full; embedding throughput (chunks/s) is measured on a sample of the chunks with
the configured embedder (each chunk with its sentences, unless KNOWLEDGE_SENTENCE_VECTORS=false), and the
end-to-end time is parse + chunk + all chunks / that rate. ``--full``
also runs the real ``source_ingest`` for the PDF end to end (own embedded database
``parlor_bench_ingest``) and reports its wall time.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = [
    "return",
    "policy",
    "boots",
    "leather",
    "order",
    "delivery",
    "customer",
    "warranty",
    "size",
    "exchange",
    "refund",
    "store",
    "shipping",
    "invoice",
    "payment",
    "account",
    "support",
    "product",
    "material",
    "care",
    "cleaning",
    "sole",
    "lace",
    "heel",
    "width",
    "colour",
    "stock",
]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."


def make_pages(count: int, rng: random.Random) -> list[str]:
    pages = []
    for number in range(count):
        lines = [f"Chapter {number // 10 + 1}, page {number + 1}", ""]
        for _ in range(4):  # four paragraphs of ~5 lines: ~1,800 characters a page, like a dense manual
            paragraph = " ".join(sentence(rng) for _ in range(4))
            lines.extend(paragraph[i : i + 90] for i in range(0, len(paragraph), 90))
            lines.append("")
        pages.append("\n".join(lines))
    return pages


def make_csv(megabytes: float, rng: random.Random) -> bytes:
    out = io.StringIO()
    out.write("sku,name,category,price,stock,description\n")
    n = 0
    while out.tell() < megabytes * 1_000_000:
        n += 1
        out.write(
            f"SKU-{n:07d},{rng.choice(WORDS).title()} {rng.choice(WORDS)},{rng.choice(WORDS)},"
            f'{rng.randint(5, 300)}.{rng.randint(0, 99):02d},{rng.randint(0, 500)},"{sentence(rng)}"\n'
        )
    return out.getvalue().encode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--csv-mb", type=float, default=10)
    parser.add_argument("--embed-sample", type=int, default=64)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    if args.full and not os.environ.get("DATABASE_URL"):
        from config.embedded import embedded_database_url

        os.environ["DATABASE_URL"] = embedded_database_url(ROOT / ".parlor" / "pgdata", "parlor_bench_ingest")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings

    from knowledge.chunking import chunk_blocks
    from knowledge.embedders import get_embedder
    from knowledge.parsing import parse_file
    from knowledge.services import chunk_sentences, embed_chunks
    from knowledge.tests.factories import make_pdf

    settings.KNOWLEDGE_MAX_FILE_BYTES = 100 * 1024 * 1024
    rng = random.Random(1)
    pdf = make_pdf(make_pages(args.pages, rng))
    csv_data = make_csv(args.csv_mb, rng)
    embedder = get_embedder()
    embedder.embed_passages(["warm up"])
    print(f"embedder: {embedder.name}; CPU cores: {os.cpu_count()}")
    print(f"sentence vectors: {'on' if settings.KNOWLEDGE_SENTENCE_VECTORS else 'off'}")
    print(
        "| input | size | parse + chunk | chunks | sentences per chunk | embedding (sample) | estimated total |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    results = {}
    for label, filename, data, unit_count, unit in (
        (f"{args.pages}-page PDF", "manual.pdf", pdf, args.pages, "pages"),
        (f"{args.csv_mb:g} MB CSV", "catalogue.csv", csv_data, csv_data.count(b"\n") - 1, "rows"),
    ):
        t0 = time.perf_counter()
        drafts = chunk_blocks(parse_file(filename=filename, data=data))
        parse_s = time.perf_counter() - t0
        sample = drafts[: args.embed_sample]
        t0 = time.perf_counter()
        embed_chunks(embedder, [(d.heading, d.content, d.tabular) for d in sample])
        rate = len(sample) / (time.perf_counter() - t0)
        sentences = sum(len(chunk_sentences(d.content, tabular=d.tabular)) for d in sample) / max(
            1, len(sample)
        )
        total = parse_s + len(drafts) / rate
        results[filename] = (drafts, parse_s, rate)
        print(
            f"| {label} | {len(data) / 1e6:.1f} MB | {parse_s:.1f} s ({unit_count / parse_s:,.0f} {unit}/s) | "
            f"{len(drafts):,} | {sentences:.1f} | {rate:.1f} chunks/s | {total:,.0f} s ({unit_count / total:,.1f} {unit}/s) |",
            flush=True,
        )
    if args.full:
        from django.core.files.base import ContentFile
        from django.core.management import call_command

        from accounts.models import Organization
        from knowledge.embedders import active_model_name, configured_model_name
        from knowledge.models import EmbeddingState
        from knowledge.services import source_create, source_ingest

        call_command("migrate", verbosity=0)
        active_model_name()  # this bench's own database indexes with the configured model, as a new deployment
        EmbeddingState.objects.update(active_model=configured_model_name())
        org = Organization.objects.create(name="ingest bench", slug=f"ingest-bench-{time.time_ns()}")
        source = source_create(
            organization=org, kind="file", title="manual", file=ContentFile(pdf, name="manual.pdf")
        )
        t0 = time.perf_counter()
        source = source_ingest(source_id=source.pk)
        wall = time.perf_counter() - t0
        print(
            f"\nfull source_ingest of the {args.pages}-page PDF: {source.status}, {source.chunk_count} chunks, "
            f"{wall:.1f} s ({args.pages / wall:.1f} pages/s, {source.chunk_count / wall:.1f} chunks/s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
