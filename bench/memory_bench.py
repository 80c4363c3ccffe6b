"""Resident memory of a Celery worker ingesting a 10 MB CSV (the web side: bench/chat_load.py measures each
web process with 1,000 sockets open).

Runs everything itself: its own embedded database ``parlor_bench_memory`` (or BENCH_DATABASE_URL), a real
``celery worker`` (WORKER_CONCURRENCY pool processes, default one per core, as ``manage.py up`` runs it) and
the source uploaded through ``source_create`` as the admin does. Every 0.5 s it samples the resident memory
of the worker's main process and of each pool process; the peak is the kernel's high-water mark (VmHWM).

    .venv/bin/python bench/memory_bench.py [--csv-mb 10] [--max-seconds 1800]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def status_mb(pid: int) -> tuple[float, float]:
    """(resident now, resident peak) of a process in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv-mb", type=float, default=10)
    parser.add_argument("--max-seconds", type=float, default=1800, help="stop sampling after this long")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    args = parser.parse_args()
    from config.embedded import embedded_database_url

    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL") or embedded_database_url(
        ROOT / ".parlor" / "pgdata", "parlor_bench_memory"
    )
    os.environ["REDIS_URL"] = args.redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    import psutil
    import redis
    from django.conf import settings
    from django.core.files.base import ContentFile
    from django.core.management import call_command

    from accounts.models import Organization
    from bench.ingest_bench import make_csv
    from knowledge.embedders import active_model_name, configured_model_name
    from knowledge.models import EmbeddingState, Source
    from knowledge.services import source_create

    call_command("migrate", verbosity=0)
    active_model_name()
    EmbeddingState.objects.update(active_model=configured_model_name())
    redis.Redis.from_url(args.redis_url).flushdb()
    env = {
        **os.environ,
        "DATABASE_URL": settings.DATABASE_URL,
    }
    log = (ROOT / ".parlor" / "bench").resolve()
    log.mkdir(parents=True, exist_ok=True)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=(log / "memory-worker.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    samples: dict[int, tuple[float, float]] = {}
    try:
        deadline = time.monotonic() + 300
        while len(psutil.Process(worker.pid).children()) < settings.CELERY_WORKER_CONCURRENCY:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker's pool did not start")
            time.sleep(0.5)
        time.sleep(2)
        idle = {
            pid: status_mb(pid)
            for pid in [worker.pid, *(c.pid for c in psutil.Process(worker.pid).children())]
        }
        org = Organization.objects.create(name="memory bench", slug=f"memory-bench-{time.time_ns()}")
        data = make_csv(args.csv_mb, random.Random(1))
        source = source_create(
            organization=org, kind="file", title="catalogue", file=ContentFile(data, name="catalogue.csv")
        )
        started = time.monotonic()
        while time.monotonic() - started < args.max_seconds:
            for pid in [worker.pid, *(c.pid for c in psutil.Process(worker.pid).children())]:
                with contextlib.suppress(FileNotFoundError, KeyError):
                    samples[pid] = status_mb(pid)
            source.refresh_from_db()
            if source.status in ("ready", "failed"):
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
    source = Source.objects.get(pk=source.pk)
    print(f"{args.csv_mb:g} MB CSV ({len(data) / 1e6:.1f} MB): {source.status} ({source.chunk_count:,} chunks) "
          f"after {elapsed:.0f} s; worker pool processes: {settings.CELERY_WORKER_CONCURRENCY}")  # fmt: skip
    print("| process | idle | resident at the end | peak (VmHWM) |")
    print("| --- | ---: | ---: | ---: |")
    for pid, (rss, peak) in samples.items():
        role = "worker main" if pid == worker.pid else f"pool process {pid}"
        before = idle.get(pid, (0.0, 0.0))[0]
        print(f"| {role} | {before:.0f} MB | {rss:.0f} MB | {peak:.0f} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
