"""Chat benchmarks: platform time to first token, and 1,000 concurrent streaming conversations.

Runs everything itself and stops by itself: an embedded database `parlor_bench` (or DATABASE_URL), the
local OpenAI-compatible server (`manage.py fake_llm`, answering instantly), and one Daphne process serving
Parlor plus a bare Channels consumer (bench/bare_asgi.py) for comparison. Results go to BENCHMARKS.md.

    .venv/bin/python bench/chat_load.py                 # full run (10k chunks, 100 TTFT, 1,000 streams)
    .venv/bin/python bench/chat_load.py --quick         # small smoke run, nothing written
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
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from config.web_processes import web_concurrency_default  # noqa: E402

EVAL_CORPUS = ROOT.parent / "shared" / "eval" / "scifact" / "corpus.jsonl"
THINK_SECONDS = (5.0, 15.0)  # a visitor reads the answer and types the next question
QUESTIONS = [
    "What do we know about {w} and its effect on {v}?",
    "Is there evidence that {w} changes {v}?",
    "How does {w} relate to {v} in patients?",
    "Summarise the findings about {w}.",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def setup_django(database_url: str | None, redis_url: str) -> None:
    from config.embedded import embedded_database_url

    os.environ["DATABASE_URL"] = database_url or embedded_database_url(
        ROOT / ".parlor" / "pgdata", "parlor_bench"
    )
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def corpus_texts(count: int) -> list[str]:
    """Passages from the SciFact corpus when present (realistic text for full-text search), else filler."""
    texts: list[str] = []
    if EVAL_CORPUS.exists():
        with EVAL_CORPUS.open() as handle:
            for line in handle:
                doc = json.loads(line)
                sentences = re.split(r"(?<=[.!?])\s+", doc["text"])
                for start in range(0, len(sentences), 3):
                    texts.append(" ".join(sentences[start : start + 3]))
                if len(texts) >= count:
                    break
    rng = random.Random(1)
    words = [
        "return",
        "refund",
        "shipping",
        "order",
        "boots",
        "size",
        "exchange",
        "warranty",
        "store",
        "delivery",
        "invoice",
    ]
    while len(texts) < count:
        texts.append(" ".join(rng.choice(words) for _ in range(60)))
    return texts[:count]


def seed(chunks: int, llm_base_url: str) -> dict[str, str]:
    """A bench organization with a 10k-chunk source and two bots (short and 300-token answers)."""
    import numpy as np
    from django.contrib.postgres.search import SearchVector
    from django.db import connection

    from accounts.models import Organization
    from bench.retrieval_bench import sentence_vectors
    from chatbots.models import Bot
    from chatbots.services import bot_create
    from knowledge.embedders import active_model_name, configured_model_name, forget_serving_model
    from knowledge.models import Chunk, EmbeddingState, Source, SourceKind, SourceStatus

    # The bench's own database serves the configured model, as a new deployment does: questions are
    # embedded with it on every message.
    model = configured_model_name()
    if active_model_name() != model:
        EmbeddingState.objects.update(active_model=model)
        forget_serving_model()
    org, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    source = Source.objects.filter(organization=org, title="bench corpus (clustered)").first()
    stale = source is not None and (
        source.chunks.exclude(embedding_model=model).exists()
        or source.chunks.filter(sentence_embeddings__len=0).exists()  # stored before sentence vectors
    )
    if source is None or source.chunk_count != chunks or stale:
        Source.objects.filter(organization=org).delete()
        source = Source.objects.create(
            organization=org,
            kind=SourceKind.TEXT,
            title="bench corpus (clustered)",
            status=SourceStatus.READY,
            chunk_count=chunks,
        )
        rng = np.random.default_rng(7)
        texts = corpus_texts(chunks)
        # Clustered vectors (topic centre + noise), as in bench/retrieval_bench.py: real embeddings cluster,
        # while uniform random ones are the HNSW index's worst case.
        centres = rng.normal(size=(200, 384))
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        for start in range(0, chunks, 1000):
            count = min(1000, chunks - start)
            vectors = centres[rng.integers(0, len(centres), count)] + rng.normal(
                scale=0.6 / 384**0.5, size=(count, 384)
            )
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            Chunk.objects.bulk_create(
                Chunk(organization=org, source=source, ordinal=start + i, content=texts[start + i],
                      embedding=vectors[i].tolist(), sentence_embeddings=sentence_vectors(rng, vectors[i]),
                      embedding_model=model, token_count=len(texts[start + i]) // 4)
                for i in range(len(vectors))
            )  # fmt: skip
        Chunk.objects.filter(source=source).update(search_vector=SearchVector("content", config="english"))
        with connection.cursor() as cursor:  # settle the bulk load (else autovacuum runs during the bench)
            cursor.execute("VACUUM ANALYZE knowledge_chunk")
            cursor.execute("VACUUM ANALYZE knowledge_chunkterm")
    bots = {}
    for key, model_name in (("ttft", "bench?words=20"), ("stream", "bench?words=300")):
        Bot.objects.filter(organization=org, name=f"bench-{key}").delete()
        bot = bot_create(
            organization=org, name=f"bench-{key}", provider="custom", base_url=llm_base_url, model=model_name,
            answer_style="mixed", history_turns=4,
        )  # fmt: skip
        bot.sources.add(source)
        bots[key] = bot.public_id
    return bots


def question(rng: random.Random, vocabulary: list[str]) -> str:
    return rng.choice(QUESTIONS).format(w=rng.choice(vocabulary), v=rng.choice(vocabulary))


@dataclass
class ConversationResult:
    first_delta_s: float | None = None
    deltas: int = 0  # delta frames
    text: list[str] = field(default_factory=list)  # what the delta frames carried, in order
    done: bool = False
    errors: list[str] = field(default_factory=list)
    finished_at: float = 0.0
    first_delta_at: float = 0.0


async def run_conversation(
    url: str, message: dict, start: asyncio.Event | None = None, opened: asyncio.Event | None = None
) -> ConversationResult:
    """One socket, one message; ``opened`` is set once the socket is open (or failed to open)."""
    import websockets

    result = ConversationResult()
    try:
        async with websockets.connect(url, max_queue=None, open_timeout=60, ping_interval=None) as ws:
            if "/ws/chat/" in url:
                ready = json.loads(await ws.recv())
                if ready.get("type") != "ready":
                    result.errors.append(f"no ready: {ready}")
                    return result
            if opened is not None:
                opened.set()
            if start is not None:
                await start.wait()
            sent = time.perf_counter()
            await ws.send(json.dumps(message))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if frame["type"] == "delta":
                    result.deltas += 1
                    result.text.append(frame["text"])
                    if result.first_delta_s is None:
                        result.first_delta_at = time.perf_counter()
                        result.first_delta_s = result.first_delta_at - sent
                elif frame["type"] == "error":
                    result.errors.append(frame.get("code", "error"))
                elif frame["type"] == "done":
                    result.done = True
                    result.finished_at = time.perf_counter()
                    return result
    except Exception as exc:  # a benchmark counts failures instead of stopping at the first
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        if opened is not None:
            opened.set()
    return result


async def paced_conversation(url: str, texts: list[str], rng: random.Random) -> tuple[list[float], int]:
    """One visitor: opens the chat, then asks each question after reading the previous answer."""
    import websockets

    ttfts: list[float] = []
    errors = 0
    await asyncio.sleep(rng.uniform(0, THINK_SECONDS[1]))  # visitors arrive spread out, not in lockstep
    async with websockets.connect(url, max_queue=None, open_timeout=60, ping_interval=None) as ws:
        json.loads(await ws.recv())  # ready
        for text in texts:
            await asyncio.sleep(rng.uniform(*THINK_SECONDS))
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "message", "text": text}))
            first = None
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if frame["type"] == "delta" and first is None:
                    first = time.perf_counter() - sent
                elif frame["type"] == "error":
                    errors += 1
                    print("error frame:", frame, file=sys.stderr)
                    if frame.get("code") != "llm_unavailable":
                        break
                elif frame["type"] == "done":
                    break
            if first is not None:
                ttfts.append(first * 1000)
    return ttfts, errors


async def model_server_first_token(base_url: str, requests: int = 50) -> list[float]:
    """The local model server's own time to first content chunk, one request at a time, on a kept-alive
    connection as the pipeline's client uses it (ms)."""
    import httpx

    timings = []
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(requests):
            started = time.perf_counter()
            body = {
                "model": "bench?words=20",
                "stream": True,
                "messages": [{"role": "user", "content": f"q{i}"}],
            }
            first: float | None = None
            async with client.stream("POST", f"{base_url}/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if first is None and '"content": "' in line and '"content": ""' not in line:
                        first = (time.perf_counter() - started) * 1000
            timings.append(first)
    return timings[5:]


async def ttft_phase(base: str, bot_id: str, concurrency: int, rounds: int, vocabulary: list[str]) -> dict:
    """100 visitors chatting at once, each asking ``rounds`` questions with think time between them; then a
    burst where all of them send at the same instant (saturation)."""
    from django.utils import timezone

    from chatbots.models import Message

    rng = random.Random(3)
    await run_conversation(
        f"{base}/ws/chat/{bot_id}/?visitor=benchwarmup00", {"type": "message", "text": "warm up"}
    )
    since = timezone.now()
    outcomes = await asyncio.gather(
        *(
            paced_conversation(
                f"{base}/ws/chat/{bot_id}/?visitor=paced{i:08d}",
                [question(rng, vocabulary) for _ in range(rounds)],
                random.Random(i),
            )
            for i in range(concurrency)
        )
    )
    burst_since = timezone.now()
    burst = await asyncio.gather(
        *(
            run_conversation(
                f"{base}/ws/chat/{bot_id}/?visitor=burst{i:08d}",
                {"type": "message", "text": question(rng, vocabulary)},
            )
            for i in range(concurrency)
        )
    )

    def stored(start, end=None) -> list[float]:
        query = Message.objects.filter(
            conversation__bot__public_id=bot_id, role="assistant", created_at__gte=start
        )
        if end is not None:
            query = query.filter(created_at__lt=end)
        return [float(ms) for ms in query.values_list("first_token_ms", flat=True) if ms is not None]

    from asgiref.sync import sync_to_async

    return {
        "server": await sync_to_async(stored)(since, burst_since),
        "client": [v for ttfts, _ in outcomes for v in ttfts],
        "burst_server": await sync_to_async(stored)(burst_since),
        "burst_client": [r.first_delta_s * 1000 for r in burst if r.first_delta_s is not None],
        "errors": sum(e for _, e in outcomes) + sum(1 for r in burst if r.errors or not r.done),
    }


async def stream_phase(
    base: str, path: str, message: dict, conversations: int, vocabulary: list[str], on_connected=None
) -> dict:
    """``conversations`` sockets opened first, then all asked at the same instant. Tokens are counted in
    the text received (words: one per model token here), frames as they come: a frame may carry several
    tokens when they arrived together. ``on_connected`` runs once every socket is open (memory samples)."""
    start = asyncio.Event()
    rng = random.Random(5)
    tasks = []
    batch: list[asyncio.Event] = []
    for i in range(conversations):
        body = dict(message)
        if "text" in body:
            body["text"] = question(rng, vocabulary)
        batch.append(asyncio.Event())
        url = f"{base}{path}?visitor=stream{i:08d}"
        tasks.append(asyncio.create_task(run_conversation(url, body, start, opened=batch[-1])))
        if len(batch) == 100 or i == conversations - 1:
            # Sockets open 100 at a time, each hundred once the previous one is open: a server's handshake
            # limit (Daphne refuses a socket its application has not accepted within 5 s) measures how busy
            # the machine is, not the streams measured here.
            await asyncio.gather(*(opened.wait() for opened in batch))
            batch = []
    await asyncio.sleep(2)
    connected = on_connected() if on_connected is not None else None
    began = time.perf_counter()
    start.set()
    results = await asyncio.gather(*tasks)
    ended = max((r.finished_at for r in results if r.done), default=began)
    tokens = sum(len("".join(r.text).split()) for r in results)
    first = min((r.first_delta_at for r in results if r.first_delta_at), default=began)
    return {
        "stream_rate": tokens / (ended - first) if ended > first else 0.0,
        "frames": sum(r.deltas for r in results),
        "tokens": tokens,
        "seconds": ended - began,
        "rate": tokens / (ended - began) if ended > began else 0.0,
        "done": sum(r.done for r in results),
        "errors": sum(1 for r in results if r.errors),
        "error_samples": sorted({e for r in results for e in r.errors})[:5],
        "connected": connected,
    }


def lost_messages(bot_id: str, conversations: int, words: int, since) -> dict:
    from chatbots.models import Message

    messages = Message.objects.filter(conversation__bot__public_id=bot_id, created_at__gte=since)
    complete = [
        m
        for m in messages.filter(role="assistant").values_list("text", "status")
        if m[1] == "complete" and len(m[0].split()) >= words
    ]
    return {
        "user": messages.filter(role="user").count(),
        "assistant_complete": len(complete),
        "expected": conversations,
    }


def web_pids(web: subprocess.Popen) -> list[int]:
    """The Daphne processes: ``serve_web`` itself with one process (it becomes Daphne), else its children."""
    import psutil

    children = psutil.Process(web.pid).children()
    return [child.pid for child in children] or [web.pid]


def memory_mb(pids: list[int]) -> list[dict[str, float]]:
    """Resident memory now and at its peak (VmHWM) of each process, in MB."""
    samples = []
    for pid in pids:
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        samples.append(
            {
                "rss": int(status["VmRSS"].split()[0]) / 1024,
                "peak": int(status["VmHWM"].split()[0]) / 1024,
            }
        )
    return samples


def start_web(processes: int, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Parlor and the bare consumer served as ``manage.py up`` serves Parlor (``serve_web``)."""
    return start_process(
        [sys.executable, "manage.py", "serve_web", "--host", "127.0.0.1", "--port", str(port),
         "--processes", str(processes), "--application", "bench.bare_asgi:application"],
        env, log,
    )  # fmt: skip


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_profiler(pids: list[int], seconds: int, out: Path) -> subprocess.Popen:
    """py-spy sampling the web processes (collapsed stacks, idle frames left out)."""
    args = [str(Path(sys.executable).with_name("py-spy")), "record", "--format", "raw", "--rate", "200",
            "--duration", str(seconds), "--output", str(out), "--pid", str(pids[0])]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def profile_summary(path: Path, top: int = 25) -> list[tuple[str, float, float]]:
    """(function, self %, inclusive %) from py-spy's collapsed stacks, heaviest self time first."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for frame in stack.split(";")]  # fmt: skip
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    ranked = sorted(own, key=own.get, reverse=True)[:top]
    return [(name, 100 * own[name] / total, 100 * inclusive[name] / total) for name in ranked]


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_port(port: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def wait_web_ready(port: int, processes: int, timeout: float = 600) -> None:
    """Until every web process answers: the sockets listen (in ``serve_web``) before the processes have
    loaded Django, and the kernel spreads new connections over all of them, so ``10 × processes``
    health checks in a row on fresh connections must succeed."""
    import urllib.request

    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 10 * processes:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the web processes on {port} did not all answer")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                streak = streak + 1 if response.status == 200 else 0
        except OSError:
            streak = 0
            time.sleep(0.5)


def write_results(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    content = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"<!-- chat:start -->\n{text}<!-- chat:end -->\n"
    if "<!-- chat:start -->" in content:
        content = re.sub(r"<!-- chat:start -->.*<!-- chat:end -->\n", lambda _: block, content, flags=re.S)
    else:
        content = content.rstrip("\n") + "\n\n" + block
    path.write_text(content)


def stream_lines(runs: list[dict], tokens: int) -> list[str]:
    """The streams table: per web-process count, the pipeline and the bare consumer in the same run."""
    lines = [
        "| web processes | consumer | tokens | delta frames | wall time | tokens/s (send → last done) "
        "| tokens/s (first → last delta) | completed | errors | pipeline / bare |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        pipeline, bare = run["pipeline"], run["bare"]
        ratio = pipeline["rate"] / bare["rate"] if bare["rate"] else 0.0
        stream_ratio = pipeline["stream_rate"] / bare["stream_rate"] if bare["stream_rate"] else 0.0
        for name, result, cell in (("Parlor chat pipeline", pipeline, f"**{ratio:.2f}** ({stream_ratio:.2f})"),
                                   ("bare Channels consumer", bare, "")):  # fmt: skip
            lines.append(
                f"| {run['processes']} | {name} | {result['tokens']:,} | {result['frames']:,} | "
                f"{result['seconds']:.1f} s | {result['rate']:,.0f} | {result['stream_rate']:,.0f} | "
                f"{result['done']} | {result['errors']} | {cell} |"
            )
    lines.append("")
    lines.append(
        "Pipeline / bare: token rate end to end (every message first goes through retrieval), in brackets while "
        f"streaming; both consumers in the same server, same run. Every answer is {tokens} tokens."
    )
    for run in runs:
        stored, pipeline = run["stored"], run["pipeline"]
        connected = pipeline["connected"] or []
        after = pipeline["memory_after"]
        lines.append(
            f"- {run['processes']} web process(es): stored {stored['user']} user messages and "
            f"{stored['assistant_complete']} complete answers of {stored['expected']} expected; resident memory "
            f"per web process with {stored['expected']:,} sockets open: "
            + ", ".join(f"{m['rss']:.0f} MB" for m in connected)
            + "; after streaming: "
            + ", ".join(f"{m['rss']:.0f} MB (peak {m['peak']:.0f} MB)" for m in after)
            + "."
        )
        samples = pipeline["error_samples"] + run["bare"]["error_samples"]
        if samples:
            lines.append(f"  Error samples: {samples}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--ttft-concurrency", type=int, default=100)
    parser.add_argument("--ttft-rounds", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument(
        "--quick", action="store_true", help="tiny run for checking the script; writes nothing"
    )
    parser.add_argument(
        "--ttft-only", action="store_true", help="only the time-to-first-token phase; writes nothing"
    )
    parser.add_argument(
        "--streams-only", action="store_true", help="only the concurrent-streams phases; writes nothing"
    )
    parser.add_argument(
        "--web-processes",
        default=f"1,{web_concurrency_default()}",
        help="Daphne process counts the streams phase runs with, in this order (default: 1 and one per core)",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the (first) web process while the pipeline streams; stacks here"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    args = parser.parse_args()
    process_counts = [int(n) for n in args.web_processes.split(",")]
    if args.quick:
        args.chunks, args.ttft_concurrency, args.ttft_rounds, args.conversations = 500, 10, 1, 50

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
        "CHAT_RATE_LIMIT_VISITOR": "0",
        "CHAT_RATE_LIMIT_API_KEY": "0",
        "CHAT_RATE_LIMIT_BOT": "0",
        "CHAT_RATE_LIMIT_IP": "0",
        "LOG_LEVEL": "WARNING",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "LLM_ALLOW_PRIVATE_BASE_URLS": "true",
    }  # fmt: skip  (production settings: no query log)
    llm = start_process(
        [sys.executable, "manage.py", "fake_llm", "--port", str(llm_port)], env, logs / "llm.log"
    )
    web = start_web(1, web_port, env, logs / "daphne.log")
    runs = []
    try:
        wait_port(llm_port)
        bots = seed(args.chunks, f"http://127.0.0.1:{llm_port}/v1")
        if args.tokens != 300:
            from chatbots.models import Bot

            Bot.objects.filter(public_id=bots["stream"]).update(model=f"bench?words={args.tokens}")
        wait_web_ready(web_port, 1)
        vocabulary = [w for w in " ".join(corpus_texts(200)).lower().split() if w.isalpha() and len(w) > 5][
            :400
        ]
        base = f"ws://127.0.0.1:{web_port}"
        model_first_token = asyncio.run(model_server_first_token(f"http://127.0.0.1:{llm_port}/v1"))
        if not args.streams_only:
            ttft = asyncio.run(
                ttft_phase(base, bots["ttft"], args.ttft_concurrency, args.ttft_rounds, vocabulary)
            )
        if args.ttft_only:
            for name in ("server", "client", "burst_server", "burst_client"):
                values = ttft[name]
                print(f"{name}: p50 {statistics.median(values):.1f} ms, p95 {percentile(values, 95):.1f} ms")
            print(
                f"errors: {ttft['errors']}, model server first token p50 {statistics.median(model_first_token):.1f} ms"
            )
            return
        from django.utils import timezone

        for position, processes in enumerate(process_counts):
            if position or processes != 1:  # the first server (one process) served the TTFT phase
                stop_process(web)
                web = start_web(processes, web_port, env, logs / f"daphne-{processes}.log")
                wait_web_ready(web_port, processes)
            pids = web_pids(web)
            profiler = None
            if args.profile and position == 0:
                profiler = start_profiler(pids, 600, args.profile)
            since = timezone.now()
            pipeline = asyncio.run(
                stream_phase(
                    base, f"/ws/chat/{bots['stream']}/", {"type": "message", "text": ""}, args.conversations,
                    vocabulary, on_connected=lambda pids=pids: memory_mb(pids),
                )
            )  # fmt: skip
            pipeline["memory_after"] = memory_mb(pids)
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
                profiler.wait(60)
            bare = asyncio.run(stream_phase(base, "/ws/bare/", {"type": "message", "tokens": args.tokens},
                                            args.conversations, vocabulary))  # fmt: skip
            stored = lost_messages(bots["stream"], args.conversations, args.tokens, since)
            runs.append({"processes": processes, "pipeline": pipeline, "bare": bare, "stored": stored})
            print("\n".join(stream_lines([runs[-1]], args.tokens)), flush=True)
    finally:
        for proc in (web, llm):
            stop_process(proc)
    if args.profile:
        print(f"\nWhere the web process's time went (py-spy, {args.profile}): function, self %, inclusive %")
        for name, own, inclusive in profile_summary(args.profile):
            print(f"  {own:5.1f}  {inclusive:5.1f}  {name}")
    if args.streams_only:
        print("\n".join(stream_lines(runs, args.tokens)))
        return

    lines = [
        "## Chat",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}, Daphne (`manage.py serve_web`; one process for the first-token figures), PostgreSQL 18 + pgvector (embedded), local Redis; the "
        "model is the local OpenAI-compatible server answering instantly.",
        f"Command: `.venv/bin/python bench/chat_load.py` ({args.chunks:,} chunks in the bot's knowledge, hybrid "
        "retrieval with the bundled embedder on every message).",
        "",
        f"### Platform time to first token ({args.ttft_concurrency} concurrent conversations)",
        "",
        f"Each of {args.ttft_concurrency} visitors keeps a socket open and asks {args.ttft_rounds} questions, "
        f"waiting {THINK_SECONDS[0]:.0f}-{THINK_SECONDS[1]:.0f} s (reading, typing) before each; then all of them "
        "send one message at the same instant (burst). Server figures are the stored `first_token_ms` "
        "(message received → first delta sent); client figures add the loopback WebSocket hops.",
        "",
        "| load | measured | p50 | p95 | samples |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for load, name, values in (
        ("paced", "server", ttft["server"]), ("paced", "client", ttft["client"]),
        ("burst", "server", ttft["burst_server"]), ("burst", "client", ttft["burst_client"]),
    ):  # fmt: skip
        if values:
            lines.append(f"| {load} | {name} | {statistics.median(values):.0f} ms | {percentile(values, 95):.0f} ms | "
                         f"{len(values)} |")  # fmt: skip
    lines += [
        f"\nErrors: {ttft['errors']}. Part of every figure is the local model server's own time to first token "
        f"(request sent → first content chunk, measured alone before the run, connections kept alive "
        f"between answers as hosted providers do): p50 {statistics.median(model_first_token):.1f} ms.",
        "",
        f"### {args.conversations:,} concurrent WebSocket conversations, {args.tokens}-token answers",
        "",
        *stream_lines(runs, args.tokens),
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.quick:
        write_results(report)


if __name__ == "__main__":
    main()
