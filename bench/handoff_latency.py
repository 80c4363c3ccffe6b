"""Human handoff latency: an operator's reply to the visitor's screen, with 200 live handoffs on one web process.

Runs everything itself and stops by itself: an embedded database `parlor_bench` (or BENCH_DATABASE_URL),
Redis (--redis-url), and one Daphne process serving Parlor (config.asgi). It seeds 200 conversations taken by
operators, opens 200 visitor sockets (ws/chat/, resuming those conversations, so each joins its handoff
group) and one admin socket per operator (ws/admin/inbox/, signed in by a session cookie). Operators then
reply through the real path: admin socket → ``operator_message_send`` (message stored) → Redis channel layer
→ the visitor's socket. Measured: the operator's ``reply`` frame sent → the visitor's ``operator_message``
frame received (both ends in this process, one clock). Results go to BENCHMARKS.md.

    .venv/bin/python bench/handoff_latency.py              # 200 handoffs, 10 replies each
    .venv/bin/python bench/handoff_latency.py --quick      # 20 handoffs, nothing written
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chat_load import free_port, percentile, setup_django, start_process, wait_port  # noqa: E402

OPERATORS = 4


def seed(handoffs: int) -> dict:
    """An organization with operators, a bot, and ``handoffs`` conversations, each taken by an operator."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.models import Membership, Role, User
    from accounts.services import organization_create
    from chatbots.handoff import handoff_request, handoff_take
    from chatbots.models import Bot, Conversation, Message, MessageRole

    run = secrets.token_hex(4)
    owner = User.objects.create_user(email=f"owner-{run}@bench.example", full_name="Bench Owner")
    organization = organization_create(name=f"Handoff bench {run}", owner=owner)
    operators = [owner]
    for n in range(1, OPERATORS):
        user = User.objects.create_user(email=f"op{n}-{run}@bench.example", full_name=f"Operator {n}")
        Membership.objects.create(user=user, organization=organization, role=Role.MEMBER)
        operators.append(user)
    bot = Bot.objects.create(organization=organization, name="Bench helper", handoff_enabled=True)
    conversations = []
    for n in range(handoffs):
        visitor = f"bench-{run}-{n}"
        conversation = Conversation.objects.create(organization=organization, bot=bot, visitor_id=visitor)
        Message.objects.create(
            organization=organization,
            conversation=conversation,
            role=MessageRole.USER,
            text="A person please",
        )
        handoff_request(conversation=conversation)
        operator = operators[n % OPERATORS]
        handoff_take(conversation=conversation, operator=operator)
        conversations.append({"id": str(conversation.pk), "visitor": visitor, "operator": n % OPERATORS})
    cookies = []
    for user in operators:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.save()
        cookies.append(session.session_key)
    return {"bot": bot.public_id, "conversations": conversations, "cookies": cookies}


async def measure(base: str, origin: str, data: dict, replies: int, think: tuple[float, float]) -> dict:
    import websockets

    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    errors: list[str] = []
    received = 0
    done = asyncio.Event()
    expected = len(data["conversations"]) * replies

    async def visitor(conversation: dict, ready: asyncio.Event) -> None:
        nonlocal received
        url = f"{base}/ws/chat/{data['bot']}/?visitor={conversation['visitor']}&conversation={conversation['id']}"
        try:
            ws = await websockets.connect(url, max_queue=None, open_timeout=120, ping_interval=None,
                                          additional_headers={"Origin": origin})  # fmt: skip
            first = json.loads(await ws.recv())
        except Exception as exc:  # counted, and the run goes on without this visitor
            errors.append(f"visitor not connected: {type(exc).__name__}")
            return
        finally:
            ready.set()
        if first.get("handoff", {}).get("status") != "taken":
            errors.append(f"not in a handoff: {first}")
        async with ws:
            while not done.is_set():
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                except TimeoutError:
                    continue
                if frame.get("type") == "operator_message":
                    at = time.perf_counter()
                    start = sent_at.pop(frame["text"], None)
                    if start is not None and not frame["text"].endswith(" warmup"):
                        latencies.append((at - start) * 1000)
                    received += 1
                    if received >= expected:
                        done.set()

    async def operator(index: int, sockets_ready: asyncio.Event) -> None:
        cookie = data["cookies"][index]
        async with websockets.connect(f"{base}/ws/admin/inbox/", max_queue=None, open_timeout=120,
                                      ping_interval=None,
                                      additional_headers={"Origin": origin, "Cookie": f"sessionid={cookie}"}) as ws:  # fmt: skip
            ready = json.loads(await ws.recv())
            if ready.get("type") != "ready":
                errors.append(f"operator refused: {ready}")
                return
            await sockets_ready.wait()
            mine = [c for c in data["conversations"] if c["operator"] == index]
            rng = random.Random(index)

            async def drain() -> None:
                while not done.is_set():
                    try:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    except TimeoutError:
                        continue
                    except websockets.ConnectionClosed:
                        return
                    if frame.get("type") == "error":
                        errors.append(frame.get("code", "error"))

            async def talk(conversation: dict) -> None:
                for n in range(replies):
                    await asyncio.sleep(rng.uniform(*think))
                    # The first reply of each conversation warms the process up (imports, connections): not counted.
                    text = f"reply {conversation['id']} {n} {secrets.token_hex(3)}" + (
                        " warmup" if n == 0 else ""
                    )
                    sent_at[text] = time.perf_counter()
                    await ws.send(
                        json.dumps({"type": "reply", "conversation_id": conversation["id"], "text": text})
                    )

            drainer = asyncio.create_task(drain())
            await asyncio.gather(*(talk(c) for c in mine))
            try:
                await asyncio.wait_for(done.wait(), 60)
            except TimeoutError:
                errors.append(f"operator {index}: replies not all received")
            drainer.cancel()

    readies = [asyncio.Event() for _ in data["conversations"]]
    sockets_ready = asyncio.Event()
    visitors = [
        asyncio.create_task(visitor(c, r)) for c, r in zip(data["conversations"], readies, strict=True)
    ]
    await asyncio.gather(*(r.wait() for r in readies))
    sockets_ready.set()
    started = time.perf_counter()
    await asyncio.gather(*(operator(i, sockets_ready) for i in range(OPERATORS)))
    elapsed = time.perf_counter() - started
    done.set()
    await asyncio.gather(*visitors, return_exceptions=True)
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed, "expected": expected}


def write_results(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    content = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"<!-- handoff:start -->\n{text}<!-- handoff:end -->\n"
    if "<!-- handoff:start -->" in content:
        content = re.sub(
            r"<!-- handoff:start -->.*<!-- handoff:end -->\n", lambda _: block, content, flags=re.S
        )
    else:
        content = content.rstrip("\n") + "\n\n" + block
    path.write_text(content)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--handoffs", type=int, default=200)
    parser.add_argument("--replies", type=int, default=10, help="replies per conversation")
    parser.add_argument("--think-min", type=float, default=0.5)
    parser.add_argument("--think-max", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="20 handoffs, 3 replies each; writes nothing")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    args = parser.parse_args()
    if args.quick:
        args.handoffs, args.replies = 20, 3

    # One strong key for both processes: the operators' sessions are signed here and verified by Daphne.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    setup_django(os.environ.get("BENCH_DATABASE_URL"), args.redis_url)
    import redis
    from django.conf import settings

    redis.Redis.from_url(args.redis_url).flushdb()
    data = seed(args.handoffs)
    logs = ROOT / ".parlor" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.DATABASE_URL,
        "REDIS_URL": args.redis_url,
        "LOG_LEVEL": "WARNING",
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
    }  # fmt: skip  (the same SECRET_KEY: the session's auth hash must verify in the web process)
    web = start_process(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        env, logs / "handoff-daphne.log",
    )  # fmt: skip
    try:
        wait_port(port, timeout=300)  # a loaded machine takes its time to import Django
        result = asyncio.run(
            measure(f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}", data, args.replies,
                    (args.think_min, args.think_max))
        )  # fmt: skip
    finally:
        web.terminate()
        try:
            web.wait(10)
        except subprocess.TimeoutExpired:
            web.kill()

    values = result["latencies"]
    if not values:
        raise SystemExit(f"no reply arrived; errors: {result['errors'][:5]}")
    p50, p95, p99 = (percentile(values, p) for p in (50, 95, 99))
    rate = len(values) / result["elapsed"]
    summary = (
        f"{len(values)}/{result['expected']} replies over {args.handoffs} live handoffs in {result['elapsed']:.1f} s "
        f"({rate:.0f} replies/s; the first of each conversation a warm-up, not measured): p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, max {max(values):.1f} ms, "
        f"mean {statistics.mean(values):.1f} ms; errors: {len(result['errors'])}"
    )
    print(summary)
    if result["errors"]:
        print("first errors:", result["errors"][:5])
    if args.quick:
        return
    text = (
        "## Human handoff: operator reply to the visitor's screen\n\n"
        f"- Hardware: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; shared with other jobs (noisy).\n"
        f"- Command: `.venv/bin/python bench/handoff_latency.py --handoffs {args.handoffs} --replies {args.replies}`\n"
        f"- Setup: one Daphne process (config.asgi), {args.handoffs} visitor sockets resumed into taken "
        f"handoffs, {OPERATORS} operator admin sockets replying every {args.think_min}–{args.think_max} s per "
        "conversation through `operator_message_send` (stored, then the Redis channel layer).\n"
        f"- Result: {summary}.\n"
        "- Target: p95 ≤ 100 ms.\n"
    )
    write_results(text)


if __name__ == "__main__":
    main()
