"""What the model rewrite of follow-ups costs: extra time to first token and tokens per answer.

    REDIS_URL=redis://127.0.0.1:6379/1 .venv/bin/python bench/rewrite_cost.py \
        [--corpus ../shared/eval/conversations-lumen] [--model-delay 0.4] [--rewrite-delay 0.35]

Ingests the corpus (BEIR ``corpus.jsonl``) as text sources into its own embedded database
(``parlor_bench_rewrite``) and plays every conversation of ``conversations.jsonl`` and ``abstain.jsonl``
through the real chat pipeline (``answer_message``, as every transport calls it) twice in one run,
interleaved: a bot with "Rewrite follow-ups with the model" on and the same bot with it off. The model is
the local OpenAI-compatible server: an answer's first token after ``--model-delay`` seconds, a rewrite's
answer after ``--rewrite-delay`` seconds (hosted small models answer a ~15-token completion in roughly
0.3-0.6 s). Prints, for the last turns, the stored ``first_token_ms`` both ways and their difference, how
many follow-ups were rewritten or skipped as self-contained, and the tokens a rewrite adds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.offline_answer_bench import ingest  # noqa: E402  (after the path is set)


def setup_django() -> None:
    if not os.environ.get("DATABASE_URL"):
        from config.embedded import embedded_database_url

        os.environ["DATABASE_URL"] = embedded_database_url(
            ROOT / ".parlor" / "pgdata", "parlor_bench_rewrite"
        )
    for name in ("CHAT_RATE_LIMIT_VISITOR", "CHAT_RATE_LIMIT_IP", "CHAT_RATE_LIMIT_BOT"):
        os.environ.setdefault(name, "100000/min")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def percentiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


async def play(bot, turns: list[str], visitor: str):
    """Ask ``turns`` in one conversation; the stored answer to the last one."""
    from chatbots.models import Message, MessageRole
    from chatbots.pipeline.core import answer_message
    from chatbots.pipeline.events import Accepted, ChatRequest

    conversation_id = None
    for text in turns:
        request = ChatRequest(
            bot=bot, text=text, channel="widget", visitor_id=visitor, conversation_id=conversation_id
        )
        async for event in answer_message(request):
            if isinstance(event, Accepted):
                conversation_id = str(event.conversation_id)
    return await Message.objects.filter(conversation_id=conversation_id, role=MessageRole.ASSISTANT).alast()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--corpus", type=Path, default=ROOT.parent / "shared" / "eval" / "conversations-lumen"
    )
    parser.add_argument("--model-delay", type=float, default=0.4)
    parser.add_argument("--rewrite-delay", type=float, default=0.35)
    args = parser.parse_args()
    setup_django()

    from chatbots.llm.testserver import FakeLLMServer
    from chatbots.models import Bot
    from knowledge.evaluation import load_conversations

    conversations = load_conversations(
        [
            args.corpus / "conversations.jsonl",
            *([args.corpus / "abstain.jsonl"] * (args.corpus / "abstain.jsonl").exists()),
        ]
    )
    organization, source_ids = ingest(args.corpus, name="Rewrite bench")
    with FakeLLMServer() as server:
        model = f"fake?stall={args.model_delay}&rewrite_stall={args.rewrite_delay}&words=40"
        bots = {}
        for rewrite in (True, False):
            bot = Bot.objects.create(
                organization=organization, name=f"rewrite {rewrite}", provider="custom", base_url=server.base_url,
                model=model, answer_style="mixed", query_rewrite=rewrite,
            )  # fmt: skip
            bot.sources.set(source_ids)
            bots[rewrite] = bot

        async def run() -> dict:
            results: dict = {True: [], False: []}
            for number, conversation in enumerate(conversations):
                for rewrite in (True, False) if number % 2 else (False, True):  # interleaved, alternating
                    answer = await play(bots[rewrite], conversation.turns, f"bench-{rewrite}-{number}")
                    results[rewrite].append((conversation, answer))
            return results

        started = time.perf_counter()
        results = asyncio.run(run())
        elapsed = time.perf_counter() - started
        rewrites = [
            r for r in server.requests if r.messages and "standalone search question" in str(r.messages[0])
        ]
    follow_ups = [i for i, (c, _) in enumerate(results[True]) if len(c.turns) > 1]
    rewritten = [i for i in follow_ups if results[True][i][1].search_rewritten]
    print(f"{len(conversations)} conversations ({len(follow_ups)} with earlier turns), {elapsed:.0f} s")
    print(
        f"model: first token after {args.model_delay:.2f} s; rewrite answered after {args.rewrite_delay:.2f} s"
    )
    print(
        f"follow-ups rewritten: {len(rewritten)}; skipped as self-contained or first: {len(follow_ups) - len(rewritten)}"
    )
    print("\n| last turn | rewrite | n | first token p50 | p95 |\n| --- | --- | ---: | ---: | ---: |")
    for label, indices in (
        ("rewritten follow-ups", rewritten),
        ("skipped follow-ups", sorted(set(follow_ups) - set(rewritten))),
    ):
        for on in (True, False):
            values = [
                results[on][i][1].first_token_ms
                for i in indices
                if results[on][i][1].first_token_ms is not None
            ]
            if values:
                p50, p95 = percentiles(values)
                print(f"| {label} | {'on' if on else 'off'} | {len(values)} | {p50:.0f} ms | {p95:.0f} ms |")
    extra = [results[True][i][1].first_token_ms - results[False][i][1].first_token_ms for i in rewritten]
    if extra:
        p50, p95 = percentiles(extra)
        print(
            f"\nextra first-token time of a rewritten follow-up (same conversation, on - off): p50 {p50:.0f} ms, p95 {p95:.0f} ms"
        )
    if rewrites:
        prompt = [sum(len(str(m.get("content", "")).split()) for m in r.messages) for r in rewrites]
        completion = [r.tokens_sent for r in rewrites]
        print(f"rewrite requests: {len(rewrites)}; words sent p50 {statistics.median(prompt):.0f} (max {max(prompt)}), "
              f"words answered p50 {statistics.median(completion):.0f} (max {max(completion)})")  # fmt: skip
    added = [results[True][i][1].prompt_tokens - results[False][i][1].prompt_tokens for i in rewritten]
    if added:
        print(
            f"prompt tokens added to a rewritten answer (as the server counts them): p50 {statistics.median(added):.0f}"
        )


if __name__ == "__main__":
    main()
