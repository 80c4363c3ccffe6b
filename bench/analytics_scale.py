"""Analytics and inbox at scale: 1,000,000 messages in 200,000 conversations of 50 organizations over 90 days.

    .venv/bin/python bench/analytics_scale.py [--messages N --conversations N ...] [--write] [--keep]

On its own embedded database (``parlor_bench_scale``, dropped first and, unless ``--keep``, at the end), so
development and test data are untouched. Steps, each timed:

1. ``manage.py seed_traffic`` (COPY) writes the traffic, with a launch day of ``--peak-messages``;
2. the roll-up of all 90 days (a backfill), then of the launch day alone, three times;
3. the 90 days rolled up again: every row must come out equal (re-running changes nothing), and
   ``stale_days`` must find nothing to rebuild;
4. the admin's home (the dashboard) of the biggest organization, rendered by Django's test client with
   the owner signed in, for 7, 30, 90 days, a custom range and a bot filter; the analytics API too;
5. the inbox's first page (the conversations changelist) with each single filter and a search;
6. an export of the biggest organization's conversations with ~``--export-messages`` messages, run by a
   real Celery worker (``--pool solo``: the task runs in the worker's process, whose peak RSS is read from
   /proc).

Runs with DEBUG off (no query log), like production. ``--write`` replaces the section in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "parlor_bench_scale"
START, END = "<!-- analytics-scale:start -->", "<!-- analytics-scale:end -->"


def _database(keep_existing: bool) -> str:
    sys.path.insert(0, str(ROOT))
    from config.embedded import embedded_database_url

    url = embedded_database_url(ROOT / ".parlor" / "pgdata", DB_NAME)
    if not keep_existing:
        _drop(url)
        url = embedded_database_url(ROOT / ".parlor" / "pgdata", DB_NAME)
    return url


def _drop(url: str) -> None:
    import psycopg

    host = unquote(urlparse(url).hostname or "")
    with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return statistics.median(ordered), p95


def _time_get(client, url: str, repeat: int, **extra) -> tuple[float, float, int]:
    for _ in range(2):  # warm the caches (templates, bots, sessions) like a page already in use
        client.get(url, secure=True, **extra)
    samples = []
    status = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url, secure=True, **extra)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
        samples.append((time.perf_counter() - t0) * 1000)
        status = response.status_code
    p50, p95 = _percentiles(samples)
    return p50, p95, status


def _rows_snapshot() -> set[tuple]:
    from analytics.models import DailyStat

    fields = [f.name for f in DailyStat._meta.concrete_fields if f.name not in ("id", "computed_at")]
    return {tuple(str(v) for v in row) for row in DailyStat.objects.values_list(*fields).order_by()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=200_000)
    parser.add_argument("--organizations", type=int, default=50)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--peak-messages", type=int, default=100_000)
    parser.add_argument("--export-messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the seeded database of a previous --keep run"
    )
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--write", action="store_true")
    parser.add_argument(
        "--skip-rollup", action="store_true", help="measure the pages and the export only (steps 4-6)"
    )
    args = parser.parse_args()

    url = _database(keep_existing=args.reuse)
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    env = {
        "DATABASE_URL": url, "REDIS_URL": redis_url, "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "testserver,localhost", "DJANGO_SETTINGS_MODULE": "config.settings",
        "PARLOR_DATA_DIR": str(ROOT / ".parlor" / "bench-scale"),
        "STATIC_ROOT": str(ROOT / ".parlor" / "bench-scale" / "static"),
        "MEDIA_ROOT": str(ROOT / ".parlor" / "bench-scale" / "media"),
    }  # fmt: skip
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import Count
    from django.db.models.functions import TruncDate
    from django.test import Client
    from django.utils import timezone

    from accounts.models import Membership, Organization, Role, User
    from analytics.selectors import stale_days
    from analytics.services import daily_rollup
    from chatbots.exports import conversation_export_request
    from chatbots.models import Bot, Conversation, ConversationExport, ExportStatus, Message
    from chatbots.selectors import InboxFilters

    out: list[str] = []

    def report(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    from django.db.migrations.executor import MigrationExecutor

    pending = MigrationExecutor(connection).migration_plan(
        MigrationExecutor(connection).loader.graph.leaf_nodes()
    )
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0)
    migrate_s = time.perf_counter() - t0
    call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG off: pages need the manifest
    if pending and args.reuse:
        # A migration that rewrote the tables (the inbox's summary backfill) leaves them as a bulk load
        # does: vacuumed and analyzed like after seeding (autovacuum would, some minutes later).
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE chatbots_conversation")
            cursor.execute("VACUUM ANALYZE chatbots_message")
    figures: dict[str, str] = {}
    if not args.reuse or not Message.objects.exists():
        t0 = time.perf_counter()
        call_command(
            "seed_traffic", organizations=args.organizations, messages=args.messages,
            conversations=args.conversations, days=args.days, peak_messages=args.peak_messages,
        )  # fmt: skip
        figures["seed"] = f"{time.perf_counter() - t0:.0f} s"
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE chatbots_message")
            cursor.execute("VACUUM ANALYZE chatbots_conversation")
    total_messages = Message.objects.count()
    total_conversations = Conversation.objects.count()
    today = timezone.now().date()
    days = [today - dt.timedelta(days=i) for i in range(args.days - 1, -1, -1)]
    per_day = {
        row["day"]: row["n"]
        for row in Message.objects.annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day")
        .annotate(n=Count("pk"))
        .order_by()
    }
    peak_day, peak_n = max(per_day.items(), key=lambda item: item[1])

    before = after = set()
    stale: list = []
    if not args.skip_rollup:
        t0 = time.perf_counter()
        for day in days:
            daily_rollup(day=day)
        backfill_s = time.perf_counter() - t0
        peak_runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            daily_rollup(day=peak_day)
            peak_runs.append(time.perf_counter() - t0)
        before = _rows_snapshot()
        t0 = time.perf_counter()
        for day in days:
            daily_rollup(day=day)
        rerun_s = time.perf_counter() - t0
        after = _rows_snapshot()
        t0 = time.perf_counter()
        stale = stale_days(since=days[0], until=days[-1])
        stale_s = time.perf_counter() - t0

        # The same with the day indexes dropped (in a transaction that is rolled back): why they exist.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("DROP INDEX message_created; DROP INDEX conversation_created")
            t0 = time.perf_counter()
            daily_rollup(day=peak_day)
            peak_without_index = time.perf_counter() - t0
            t0 = time.perf_counter()
            stale_days(since=days[0], until=days[-1])
            stale_without_index = time.perf_counter() - t0
            transaction.set_rollback(True)

    # The biggest organization, seen by its owner.
    biggest = Message.objects.values("organization_id").annotate(n=Count("pk")).order_by("-n").first()
    organization = Organization.objects.get(pk=biggest["organization_id"])
    owner, _ = User.objects.get_or_create(email="bench-owner@example.com")
    Membership.objects.get_or_create(user=owner, organization=organization, defaults={"role": Role.OWNER})
    client = Client()
    client.force_login(owner)
    bot = Bot.objects.filter(organization=organization).order_by("pk").first()
    custom_start = (today - dt.timedelta(days=59)).isoformat()
    dashboard = [
        ("7 days", "/admin/?range=7"),
        ("30 days", "/admin/?range=30"),
        ("90 days", "/admin/?range=90"),
        ("custom, 60 days", f"/admin/?range=custom&start={custom_start}&end={today.isoformat()}"),
        ("90 days, one bot", f"/admin/?range=90&bot={bot.public_id}"),
        ("API summary, 90 days", f"/api/v1/analytics/summary/?start={days[0]}&end={today}"),
        ("API series, 90 days", f"/api/v1/analytics/series/?start={days[0]}&end={today}"),
    ]
    dashboard_results = [(label, *_time_get(client, path, args.repeat)) for label, path in dashboard]
    # The question panels are grouped at most once a minute per organization; what a load that groups
    # them costs (the first of the minute), with the cache off:
    from django.test import override_settings

    with override_settings(DASHBOARD_QUESTIONS_CACHE_SECONDS=0):
        uncached = _time_get(client, "/admin/?range=90", 10)

    inbox_url = "/admin/chatbots/conversation/"
    week_ago = (today - dt.timedelta(days=6)).isoformat()
    inbox = [
        ("no filter", ""),
        ("bot", f"?bot__id__exact={bot.pk}"),
        ("channel (api)", "?channel__exact=api"),
        ("last 7 days", f"?last_message_at_from={week_ago}&last_message_at_to={today.isoformat()}"),
        ("thumbs down", "?feedback=down"),
        ("unanswered", "?unanswered=yes"),
        ("failed", "?failed=yes"),
        ("search (a word)", "?q=warranty"),
        ("search (a phrase)", '?q="instalments"+Berlin'),
    ]
    inbox_results = [(label, *_time_get(client, inbox_url + query, args.repeat)) for label, query in inbox]
    with transaction.atomic():  # the filters' partial indexes dropped, then restored by the rollback
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP INDEX conversation_org_thumbs_down; DROP INDEX conversation_org_unanswered; "
                "DROP INDEX conversation_org_failure"
            )
        inbox_without = [
            (label, *_time_get(client, inbox_url + query, 5))
            for label, query in inbox
            if label in ("thumbs down", "unanswered", "failed")
        ]
        transaction.set_rollback(True)
    org_conversations = Conversation.objects.filter(organization=organization).count()
    org_messages = biggest["n"]

    # An export of ~export-messages messages: the most recent days of the biggest organization.
    since = today
    while since > days[0]:
        n = Message.objects.filter(
            organization=organization, conversation__last_message_at__date__gte=since
        ).count()
        if n >= args.export_messages:
            break
        since -= dt.timedelta(days=1)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "WARNING",
         "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env={**os.environ, **env},
    )  # fmt: skip
    try:
        time.sleep(5)
        t0 = time.perf_counter()
        export = conversation_export_request(
            organization=organization, user=owner, filters=InboxFilters(since=since), format="csv"
        )
        while True:
            export.refresh_from_db()
            if export.status in (ExportStatus.READY, ExportStatus.FAILED) or time.perf_counter() - t0 > 900:
                break
            time.sleep(0.5)
        export_wall = time.perf_counter() - t0
        status_text = Path(f"/proc/{worker.pid}/status").read_text()
        peak_rss_mb = (
            int(next(line.split()[1] for line in status_text.splitlines() if line.startswith("VmHWM"))) / 1024
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    export_run = (export.finished_at - export.started_at).total_seconds() if export.finished_at else None
    export_size_mb = export.file.size / 1e6 if export.file else 0
    ConversationExport.objects.filter(pk=export.pk).delete()

    # --- report ---
    load = os.getloadavg()
    report(START)
    report("## Analytics and inbox at scale")
    report("")
    report(
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), shared with other "
        f"jobs (load average {load[0]:.1f} at the end of the run, so figures vary between runs); PostgreSQL 18 "
        f"(embedded, default settings), DEBUG off. Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. "
        f"Command: `.venv/bin/python bench/analytics_scale.py --write` (its own database `{DB_NAME}`, dropped "
        "afterwards; the traffic is `manage.py seed_traffic`, see docs/analytics.md)."
    )
    report("")
    report(
        f"Data: {total_messages:,} messages in {total_conversations:,} conversations of {args.organizations} "
        f"organizations over {args.days} days"
        + (f", written in {figures['seed']} (COPY, indexes included)" if "seed" in figures else "")
        + f"; the biggest organization has {org_messages:,} messages in {org_conversations:,} conversations; "
        f"the launch day {peak_day} has {peak_n:,} messages."
    )
    if pending:
        report("")
        report(
            f"Migrations applied to the seeded database first: {', '.join(f'{m.app_label}.{m.name}' for m, _ in pending)} "
            f"in {migrate_s:.0f} s (the inbox's per-conversation summary is filled from the 1,000,000 messages "
            "and its indexes built there)."
        )
    report("")
    if args.skip_rollup:
        report(
            "The roll-up was not run in this measurement (`--skip-rollup`: the pages and the export only)."
        )
    else:
        report("| what | target | result |")
        report("| --- | --- | ---: |")
        report(f"| roll-up of the {peak_n:,}-message day (3 runs) | ≤ 30 s | "
               f"{' / '.join(f'{s:.1f} s' for s in peak_runs)} |")  # fmt: skip
        report(f"| roll-up of all {args.days} days (backfill) | — | {backfill_s:.1f} s |")
        report(
            f"| the {args.days} days rolled up again | nothing changes | {rerun_s:.1f} s; "
            f"{'rows identical' if before == after else 'ROWS DIFFER'} ({len(after):,} rows) |"
        )
        report(
            f"| `stale_days` over the {args.days} days | nothing to rebuild | {len(stale)} days, {stale_s:.1f} s |"
        )
        report(
            f"| without the `created_at` indexes (same run): the launch day / `stale_days` | — | "
            f"{peak_without_index:.1f} s / {stale_without_index:.1f} s |"
        )
    report("")
    report(f"Dashboard of the biggest organization (admin home, owner signed in; {args.repeat} requests each "
           "after 2 warm-ups; target p95 ≤ 200 ms):")  # fmt: skip
    report("")
    report("| range | status | p50 | p95 |")
    report("| --- | ---: | ---: | ---: |")
    for label, p50, p95, status in dashboard_results:
        report(f"| {label} | {status} | {p50:.0f} ms | {p95:.0f} ms |")
    report("")
    report(
        f"The question panels are grouped at most once a minute per organization (cached; erasure and retention "
        f"invalidate them). A load that groups them (90 days, cache off, 10 requests): p50 {uncached[0]:.0f} ms, "
        f"p95 {uncached[1]:.0f} ms."
    )
    report("")
    report(f"Inbox first page of the biggest organization ({org_conversations:,} conversations; 50 a page; "
           f"{args.repeat} requests each; target p95 ≤ 150 ms):")  # fmt: skip
    report("")
    report("| filter | status | p50 | p95 |")
    report("| --- | ---: | ---: | ---: |")
    for label, p50, p95, status in inbox_results:
        report(f"| {label} | {status} | {p50:.0f} ms | {p95:.0f} ms |")
    report("")
    report(
        "Without the inbox filters' partial indexes (`conversation_org_thumbs_down`, `…_unanswered`, "
        "`…_failure`; same run, 5 requests each): "
        + "; ".join(f"{label} p50 {p50:.0f} ms, p95 {p95:.0f} ms" for label, p50, p95, _ in inbox_without)
        + "."
    )
    report("")
    report(
        f"Export (CSV) of {export.message_count:,} messages in {export.conversation_count:,} conversations "
        f"(activity since {since}), by a Celery worker (`--pool solo`): status {export.status}, "
        f"{export_run:.1f} s in the task ({export_wall:.1f} s from the request), file {export_size_mb:.0f} MB, "
        f"worker peak RSS {peak_rss_mb:.0f} MB (targets ≤ 60 s, ≤ 300 MB)."
        if export_run is not None
        else f"Export: status {export.status} after {export_wall:.0f} s."
    )
    report(END)

    if args.write:
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text()
        section = "\n".join(out)
        if START in text and END in text:
            head, rest = text.split(START, 1)
            text = head + section + rest.split(END, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        path.write_text(text)
    connection.close()
    if not args.keep:
        _drop(url)
    return 0 if before == after and not stale else 1


if __name__ == "__main__":
    raise SystemExit(main())
