"""Webhook delivery throughput, and no event lost when the worker is killed mid-run.

Runs everything itself and stops by itself: an embedded database `parlor_webhook_bench` (or
BENCH_DATABASE_URL), a Redis database (--redis-url, flushed), a signature-checking receiver on loopback
(webhooks/testing.py: it processes each event id once) and real `celery worker` processes.

1. Throughput: N events are recorded (as the apps record them, each in its own transaction, its delivery
   task queued on commit) while no worker runs; then a worker starts, and the clock runs from the first
   delivery the receiver gets to the last one. Every delivery's signature is verified.
2. Kill: N more events; a worker starts and is killed with SIGKILL (the whole process group) when about
   40 % have arrived; a new worker starts and the beat job's `webhook_deliveries_resume` runs as beat would
   (every few seconds here) until every event has arrived. Reported: events created, distinct event ids
   received (deduplicated by id), duplicates, lost.

    .venv/bin/python bench/webhook_throughput.py                   # 5,000 events per phase (writes BENCHMARKS.md)
    .venv/bin/python bench/webhook_throughput.py --events 500 --quick   # smoke run, nothing written
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PUBLIC_STAND_IN = "127.0.0.2"
BENCH_ENV = {
    "OUTBOUND_ALLOWED_NETWORKS": f"{PUBLIC_STAND_IN}/32",  # the receiver stands for a host on the internet
    "WEBHOOK_TIMEOUT_SECONDS": "2",  # the lease of a killed worker's claim: timeout + 30 s
    "WEBHOOK_REQUEUE_AFTER_SECONDS": "5",
    "LOG_LEVEL": "WARNING",
    # Persistent database connections, as a production worker runs (with 0, Django opens one per task).
    "DB_CONN_MAX_AGE": "60",
}


def setup_django(database_url: str | None, redis_url: str) -> str:
    from config.embedded import embedded_database_url

    url = database_url or embedded_database_url(ROOT / ".parlor" / "pgdata", "parlor_webhook_bench")
    os.environ.update({"DATABASE_URL": url, "REDIS_URL": redis_url, **BENCH_ENV})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def start_worker(
    *, database_url: str, redis_url: str, pool: str, concurrency: int, log: Path
) -> subprocess.Popen:
    env = {
        **os.environ, **BENCH_ENV, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_url,
    }  # fmt: skip
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", pool, "-c", str(concurrency),
               "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING",
               "-n", f"webhook-bench-{time.monotonic_ns()}@%h"]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        kill(proc)


def cpu_seconds(worker_pid: int) -> dict[str, float]:
    """CPU time so far of the worker (its children too) and the bench process (the receiver): what one
    delivery costs in Python, whatever else the machine runs. (PostgreSQL's share is not attributed: its
    backends run as another user and were not counted reliably.)"""
    import psutil

    def total(process: psutil.Process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    found = {"worker": 0.0, "receiver": total(psutil.Process())}
    try:
        worker = psutil.Process(worker_pid)
        for process in [worker, *worker.children(recursive=True)]:
            found["worker"] += total(process)
    except psutil.NoSuchProcess:
        pass
    return found


def record_events(organization_id: int, count: int) -> list[str]:
    from webhooks.models import EventType
    from webhooks.services import webhook_event

    ids = []
    for n in range(count):
        event = webhook_event(
            organization_id=organization_id, event_type=EventType.MESSAGE_CREATED,
            data={"message": {"id": n, "author": "visitor", "text": f"Question number {n}"}},
        )  # fmt: skip
        ids.append(event.pk)
    return ids


def wait_received(receiver, ids: set[str], *, timeout: float, tick=None) -> float:  # type: ignore[no-untyped-def]
    """Seconds until every id was processed (raises on timeout); ``tick`` runs every few seconds."""
    start = time.monotonic()
    last_tick = start
    while not ids <= receiver.processed.keys():
        now = time.monotonic()
        if now - start > timeout:
            missing = len(ids - receiver.processed.keys())
            raise RuntimeError(f"{missing} of {len(ids)} events not received after {timeout:.0f} s")
        if tick is not None and now - last_tick > 3:
            tick()
            last_tick = now
        time.sleep(0.05)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork", "solo"])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/2")
    parser.add_argument("--quick", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args()

    database_url = setup_django(os.environ.get("BENCH_DATABASE_URL"), args.redis_url)
    import redis

    from accounts.models import Organization
    from webhooks.models import WebhookEvent
    from webhooks.services import webhook_deliveries_resume, webhook_endpoint_create
    from webhooks.testing import WebhookReceiver, serve

    redis.Redis.from_url(args.redis_url).flushdb()
    Organization.objects.filter(slug="webhook-bench").delete()
    organization = Organization.objects.create(slug="webhook-bench", name="Webhook bench")
    receiver = WebhookReceiver(record_bodies=False)
    server = serve(receiver)
    endpoint = webhook_endpoint_create(organization=organization, url=receiver.url)
    receiver.secret = endpoint.secret
    logs = ROOT / ".parlor"
    logs.mkdir(exist_ok=True)
    worker_options = {"database_url": database_url, "redis_url": args.redis_url, "pool": args.pool,
                      "concurrency": args.concurrency}  # fmt: skip

    # 1. throughput
    started = time.monotonic()
    ids = record_events(organization.pk, args.events)
    record_rate = args.events / (time.monotonic() - started)
    worker = start_worker(**worker_options, log=logs / "webhook-bench-worker-1.log")
    try:
        receiver.wait_for(lambda r: len(r.processed) >= 1, timeout=120)
        first = time.monotonic()
        seen_at_first = len(receiver.processed)
        cpu_before = cpu_seconds(worker.pid)
        wait_received(receiver, set(ids), timeout=600)
        elapsed = time.monotonic() - first
        cpu = {name: after - cpu_before.get(name, 0.0) for name, after in cpu_seconds(worker.pid).items()}
    finally:
        stop(worker)
    throughput = (args.events - seen_at_first) / elapsed
    delivered = args.events - seen_at_first
    cpu_ms = {name: 1000 * seconds / delivered for name, seconds in cpu.items()}
    capacity = 1000 / sum(cpu_ms.values())
    print(
        "CPU ms per delivery: "
        + ", ".join(f"{k} {v:.1f}" for k, v in cpu_ms.items())
        + f"; {capacity:.0f} deliveries per CPU-second"
    )
    print(f"throughput: {args.events} deliveries, {throughput:.0f}/s ({args.pool} pool x{args.concurrency}); "
          f"events recorded at {record_rate:.0f}/s")  # fmt: skip

    # 2. kill the worker mid-run
    before = set(receiver.processed)
    ids2 = record_events(organization.pk, args.events)
    worker = start_worker(**worker_options, log=logs / "webhook-bench-worker-2.log")
    receiver.wait_for(lambda r: len(r.processed.keys() - before) >= 0.4 * args.events, timeout=600)
    kill(worker)
    at_kill = len(receiver.processed.keys() - before)
    worker = start_worker(**worker_options, log=logs / "webhook-bench-worker-3.log")
    try:
        recovery = wait_received(receiver, set(ids2), timeout=900, tick=webhook_deliveries_resume)
    finally:
        stop(worker)
    server.shutdown()
    created = WebhookEvent.objects.filter(organization=organization).count()
    received = len(set(ids) | set(ids2) & receiver.processed.keys())
    requests = sum(receiver.deliveries_per_event[i] for i in ids2)
    duplicates = requests - len(ids2)
    lost = len(set(ids2) - receiver.processed.keys())
    print(
        f"kill: {args.events} events, killed at {at_kill} received, all received {recovery:.1f} s later; "
        f"{duplicates} duplicate requests (deduplicated by event id), {lost} lost, "
        f"{receiver.bad_signatures} bad signatures; created {created}, received {received}"
    )

    if args.quick:
        return
    text = f"""## Webhooks: delivery throughput and a killed worker (`bench/webhook_throughput.py`)

Hardware: {platform.machine()}, {os.cpu_count()} cores shared with other jobs, Python {platform.python_version()}.
Command: `.venv/bin/python bench/webhook_throughput.py --events {args.events} --pool {args.pool} --concurrency {args.concurrency}`.
One Celery worker process ({args.pool} pool, concurrency {args.concurrency}), embedded PostgreSQL, local Redis, a
receiver on loopback (a Python `ThreadingHTTPServer`, keep-alive) that verifies every signature and processes
each event id once.

| measure | figure |
| --- | --- |
| deliveries per second (first to last received, {args.events} events queued before the worker started) | **{throughput:.0f}/s** (wall clock, on the shared machine) |
| CPU per delivery: worker / receiver (PostgreSQL not counted) | {cpu_ms["worker"]:.1f} / {cpu_ms["receiver"]:.1f} ms |
| deliveries per CPU-second (worker and receiver together) | **{capacity:.0f}** |
| events recorded per second (`webhook_event`, one transaction each) | {record_rate:.0f}/s |
| worker killed (SIGKILL) after | {at_kill} of {args.events} events received |
| after the kill: all received within | {recovery:.1f} s (a new worker; the beat job's re-queue every 3 s, claims expire after 32 s) |
| events created / distinct event ids received | {created} / {received} |
| lost | **{lost}** |
| duplicate requests (same event id, deduplicated by the receiver) | {duplicates} |
| bad signatures | {receiver.bad_signatures} |
"""
    write_results(text)


def write_results(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    content = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"<!-- webhooks:start -->\n{text}<!-- webhooks:end -->\n"
    if "<!-- webhooks:start -->" in content:
        content = re.sub(
            r"<!-- webhooks:start -->.*<!-- webhooks:end -->\n", lambda _: block, content, flags=re.S
        )
    else:
        content = content.rstrip("\n") + "\n\n" + block
    path.write_text(content)


if __name__ == "__main__":
    main()
