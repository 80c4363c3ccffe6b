"""Privacy benchmarks: erasing one visitor among many messages, and retention deleting expired messages
while visitors chat.

Runs everything itself and stops by itself: an embedded database `parlor_privacy_bench` (or
BENCH_DATABASE_URL), the local OpenAI-compatible server (`manage.py fake_llm`), one Daphne process serving
Parlor and one Celery worker process. Messages are seeded with COPY. Results go to BENCHMARKS.md.

1. Erasure, end to end: a data subject request for a visitor with 10,000 messages (in 10 conversations)
   among all the others is created (as the admin or API does) and the clock stops when the Celery worker
   has marked it done.
2. Retention: every seeded conversation is made older than the organization's period; time to first token
   of a chatting visitor (sequential questions over the widget's socket) is measured before the run and
   while the retention job deletes the expired messages in batches.

    .venv/bin/python bench/privacy_bench.py                    # 1,000,000 messages (writes BENCHMARKS.md)
    .venv/bin/python bench/privacy_bench.py --messages 100000  # a smaller scale (also written)
    .venv/bin/python bench/privacy_bench.py --quick            # smoke run, nothing written
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import statistics
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chat_load import free_port, percentile, run_conversation, start_process, wait_port  # noqa: E402

VISITOR = "bench-erase-visitor"
WORDS = [
    "order", "delivery", "refund", "invoice", "account", "password", "shipping", "return", "warranty", "size",
    "colour", "address", "payment", "discount", "voucher", "delay", "parcel", "tracking", "exchange",
]  # fmt: skip


def setup_django(database_url: str | None, redis_url: str) -> None:
    from config.embedded import embedded_database_url

    os.environ["DATABASE_URL"] = database_url or embedded_database_url(
        ROOT / ".parlor" / "pgdata", "parlor_privacy_bench"
    )
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(*, messages: int, visitor_messages: int, per_conversation: int, llm_base_url: str) -> dict:
    """A fresh organization: ``messages`` visitor/assistant messages in conversations of
    ``per_conversation``, ``visitor_messages`` of them from the visitor to erase; a bot that chats."""
    import random

    from django.db import connection

    from accounts.models import Organization
    from chatbots.models import Bot
    from chatbots.services import bot_create

    Organization.objects.filter(slug="privacy-bench").delete()
    org = Organization.objects.create(slug="privacy-bench", name="Privacy bench")
    archive = Bot.objects.create(organization=org, name="archive")
    chat = bot_create(organization=org, name="chat", provider="custom", base_url=llm_base_url,
                      model="bench?words=20", answer_style="mixed", history_turns=4)  # fmt: skip
    rng = random.Random(5)
    started = time.perf_counter()
    conversations = []
    remaining_visitor = visitor_messages
    total = 0
    while total < messages:
        count = min(per_conversation, messages - total)
        visitor = VISITOR if remaining_visitor > 0 else f"v-{len(conversations):08d}"
        if visitor == VISITOR:
            count = min(count, remaining_visitor)
            remaining_visitor -= count
        conversations.append((uuid.uuid4(), visitor, count))
        total += count
    with connection.cursor() as cursor:
        raw = cursor.connection
        with raw.cursor().copy(
            "COPY chatbots_conversation (id, organization_id, bot_id, channel, visitor_id, visitor_attributes,"
            " created_at, last_message_at) FROM STDIN"
        ) as copy:
            for pk, visitor, _count in conversations:
                attributes = json.dumps({"email": "erase.me@example.org"} if visitor == VISITOR else {})
                copy.write_row((pk, org.pk, archive.pk, "widget", visitor, attributes, "now", "now"))
        with raw.cursor().copy(
            "COPY chatbots_message (organization_id, conversation_id, role, text, status, error_code, sources,"
            " answered_from_faq, model, provider, offline, prompt_tokens, completion_tokens, feedback,"
            " feedback_comment, created_at) FROM STDIN"
        ) as copy:
            for pk, _visitor, count in conversations:
                for i in range(count):
                    role = "user" if i % 2 == 0 else "assistant"
                    text = " ".join(rng.choice(WORDS) for _ in range(12))
                    copy.write_row((org.pk, pk, role, text, "complete", "", "[]", False, "", "", False, 0, 0, "",
                                    "", "now"))  # fmt: skip
        cursor.execute("VACUUM ANALYZE chatbots_message")
        cursor.execute("VACUUM ANALYZE chatbots_conversation")
    return {
        "org": org,
        "chat": chat,
        "seconds": time.perf_counter() - started,
        "conversations": len(conversations),
    }


def erase(org, visitor: str = VISITOR, timeout: float = 600) -> dict:
    """Request the erasure as the admin does and wait for the worker to finish it (end to end); also the
    job's own time (claimed → done, from the request's timestamps)."""
    from chatbots.models import DataSubjectRequest, SubjectLookup, SubjectRequestKind, SubjectRequestStatus
    from chatbots.privacy import subject_request_create

    started = time.perf_counter()
    request = subject_request_create(
        organization=org, kind=SubjectRequestKind.ERASE, lookup=SubjectLookup.VISITOR_ID, value=visitor
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = DataSubjectRequest.objects.values(
            "status", "message_count", "conversation_count", "started_at", "finished_at"
        ).get(pk=request.pk)
        if state["status"] in (SubjectRequestStatus.DONE, SubjectRequestStatus.FAILED):
            seconds = time.perf_counter() - started
            job = (state.pop("finished_at") - state.pop("started_at")).total_seconds()
            return {**state, "seconds": seconds, "job_seconds": job}
        time.sleep(0.01)
    raise RuntimeError("the erasure did not finish")


async def ttft_series(
    base: str, bot_id: str, *, count: int, stop: threading.Event | None = None
) -> list[float]:
    """Client time to first token of one visitor asking ``count`` questions one after the other (or until
    ``stop`` is set, when given)."""
    values = []
    i = 0
    while (stop is None and i < count) or (stop is not None and not stop.is_set()):
        result = await run_conversation(
            f"{base}/ws/chat/{bot_id}/?visitor=ttft{uuid.uuid4().hex[:12]}",
            {"type": "message", "text": f"Where is my parcel number {i}?"},
        )
        if result.first_delta_s is not None:
            values.append(result.first_delta_s * 1000)
        i += 1
        await asyncio.sleep(0.05)
    return values


def retention(org, base: str, bot_id: str, *, samples: int, timeout: float = 1800) -> dict:
    """Time to first token before, then while the Celery worker runs the retention job (as beat starts it)."""
    from accounts.models import AuditAction, AuditEvent
    from chatbots.models import Conversation, Message
    from chatbots.tasks import retention_run_task

    expired_messages = Message.objects.filter(conversation__bot__name="archive", organization=org).count()
    Conversation.objects.filter(organization=org, bot__name="archive").update(
        last_message_at=time_ago(days=400)
    )
    org.conversation_retention_days = 365
    org.save(update_fields=["conversation_retention_days"])
    before = asyncio.run(ttft_series(base, bot_id, count=samples))
    stop = threading.Event()
    outcome: dict = {}

    def watch() -> None:
        started = time.perf_counter()
        retention_run_task.delay()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = AuditEvent.objects.filter(organization=org, action=AuditAction.RETENTION_RUN).first()
            if run is not None:  # written when the organization's run has finished
                outcome.update(seconds=time.perf_counter() - started, detail=run.detail)
                break
            time.sleep(0.2)
        stop.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    during = asyncio.run(ttft_series(base, bot_id, count=0, stop=stop))
    watcher.join()
    if "seconds" not in outcome:
        raise RuntimeError("the retention run did not finish")
    return {"expired": expired_messages, "before": before, "during": during, **outcome}


def time_ago(*, days: int):
    from django.utils import timezone

    return timezone.now() - timedelta(days=days)


def stats(values: list[float]) -> str:
    if not values:
        return "– | – | 0"
    return f"{statistics.median(values):.0f} ms | {percentile(values, 95):.0f} ms | {len(values)}"


def write_results(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    content = path.read_text()
    block = f"<!-- privacy:start -->\n{text}<!-- privacy:end -->\n"
    if "<!-- privacy:start -->" in content:
        content = re.sub(
            r"<!-- privacy:start -->.*<!-- privacy:end -->\n", lambda _: block, content, flags=re.S
        )
    else:
        content = content.rstrip("\n") + "\n\n" + block
    path.write_text(content)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--visitor-messages", type=int, default=10_000)
    parser.add_argument("--per-conversation", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=60, help="time-to-first-token samples before the run")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument(
        "--quick", action="store_true", help="tiny run for checking the script; writes nothing"
    )
    args = parser.parse_args()
    if args.quick:
        args.messages, args.visitor_messages, args.samples = 20_000, 2_000, 10

    # One strong key for this process and the worker: the request's identifier is encrypted with it.
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
    setup_django(os.environ.get("BENCH_DATABASE_URL"), args.redis_url)
    import redis
    from django.conf import settings

    redis.Redis.from_url(args.redis_url).flushdb()
    logs = ROOT / ".parlor" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    llm_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.DATABASE_URL,
        "REDIS_URL": args.redis_url,
        "CELERY_BROKER_URL": args.redis_url,
        "CELERY_RESULT_BACKEND": args.redis_url,
        "CHAT_RATE_LIMIT_VISITOR": "0", "CHAT_RATE_LIMIT_API_KEY": "0", "CHAT_RATE_LIMIT_BOT": "0",
        "CHAT_RATE_LIMIT_IP": "0", "LOG_LEVEL": "WARNING", "DEBUG": "false",
        "SECRET_KEY": os.environ["SECRET_KEY"], "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false", "LLM_ALLOW_PRIVATE_BASE_URLS": "true",
    }  # fmt: skip
    commands = {
        "llm": ["manage.py", "fake_llm", "--port", str(llm_port)],
        "daphne": ["-m", "daphne", "-b", "127.0.0.1", "-p", str(web_port), "bench.bare_asgi:application"],
        "worker": ["-m", "celery", "-A", "config", "worker", "-P", "solo", "-c", "1", "--without-gossip",
                   "--without-mingle", "-l", "WARNING"],
    }  # fmt: skip
    processes = [
        start_process([sys.executable, *command], env, logs / f"privacy-{name}.log")
        for name, command in commands.items()
    ]
    try:
        wait_port(llm_port, timeout=300)
        seeded = seed(messages=args.messages, visitor_messages=args.visitor_messages,
                      per_conversation=args.per_conversation, llm_base_url=f"http://127.0.0.1:{llm_port}/v1")  # fmt: skip
        print(f"seeded {args.messages:,} messages in {seeded['conversations']:,} conversations "
              f"in {seeded['seconds']:.0f} s")  # fmt: skip
        wait_port(web_port, timeout=300)
        base = f"ws://127.0.0.1:{web_port}"
        asyncio.run(ttft_series(base, seeded["chat"].public_id, count=3))  # warm up
        erase(seeded["org"], visitor="nobody-warm-up")  # the worker is up and has run the task once
        erased = erase(seeded["org"])
        print(f"erasure: {erased}")
        kept = retention(seeded["org"], base, seeded["chat"].public_id, samples=args.samples)
        result = kept["detail"]
        print(f"retention: {kept['seconds']:.1f} s, {result}")
        print(f"ttft before: {stats(kept['before'])}; during: {stats(kept['during'])}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
    if args.quick:
        return
    during, before = kept["during"], kept["before"]
    ratio = statistics.median(during) / statistics.median(before) if during and before else float("nan")
    text = f"""## Privacy: erasure and retention

Machine: {os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}, PostgreSQL 18 + pgvector (embedded), local Redis, one Daphne process, one Celery worker (solo pool); shared with other engineers' work while measured (noisy).
Command: `.venv/bin/python bench/privacy_bench.py --messages {args.messages}` (messages seeded with COPY: {args.messages:,} in {seeded["conversations"]:,} conversations, in {seeded["seconds"]:.0f} s).

### Erasing one visitor ({args.visitor_messages:,} messages among {args.messages:,})

From the request (as the admin or API creates it) to the worker marking it done: **{erased["seconds"]:.2f} s** for {erased["conversation_count"]} conversations and {erased["message_count"]:,} messages (target ≤ 5 s); the job itself (claimed → done): {erased["job_seconds"]:.2f} s. The worker had run one erasure before (started and warm).

### Retention deleting {kept["expired"]:,} expired messages

The Celery worker's retention job (started as beat starts it) deleted {result["messages"]:,} messages and {result["conversations"]:,} conversations in {kept["seconds"]:.1f} s (batches of {settings.RETENTION_BATCH:,} messages by primary key, {settings.RETENTION_BATCH_PAUSE_MS} ms pause between batches). Meanwhile one visitor kept asking questions over the widget's socket, one after the other (client time to first token through Daphne, model answering instantly):

| when | p50 | p95 | samples |
| --- | ---: | ---: | ---: |
| before the run | {stats(before)} |
| during the run | {stats(during)} |

Ratio of medians (during / before, same run): {ratio:.2f}.
"""
    write_results(text)
    print(text)


if __name__ == "__main__":
    main()
