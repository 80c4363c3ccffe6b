"""The answer cache on a replay of realistic widget traffic: hit rate, model cost saved, time to first token.

    REDIS_URL=redis://127.0.0.1:6379/7 .venv/bin/python bench/answer_cache_bench.py [--conversations 400]

Its own embedded database (``parlor_bench_cache``) and the local OpenAI-compatible server in process, priced
as gpt-4o-mini and answering like a hosted model (first token after ~250 ms, 60 words at 80 tokens/s). One
bot with a returns/shipping/care knowledge base and four suggested questions. Each conversation opens with
a click on a suggested question (60 %, the first suggestions more popular) or a question of its own
(40 %, drawn from 8 templates x 10 products x 4 countries, so most are asked once), and 30 % go on with a follow-up
(never cached). Every message runs through the real chat pipeline (``answer_message``); figures come
from the stored messages: hit rate, the cost the hits would have had (the original answer's cost), and the
server-side time to first token of hits and model answers, measured in the same run. The same replay runs
with the cache switched off for the baseline cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SUGGESTED = [
    "How long do I have to return boots?",
    "How much is shipping?",
    "How do I care for leather boots?",
    "Do you repair tents?",
]
SUGGESTED_WEIGHTS = [0.45, 0.25, 0.2, 0.1]
# Questions of their own: a large space (templates x topics), so most are asked once and a few again.
OWN_TEMPLATES = [
    "can I return {x}",
    "how long does shipping of {x} take",
    "do you have {x} in stock",
    "is {x} waterproof",
    "what does {x} cost to ship to {c}",
    "how do I clean {x}",
    "can you repair {x}",
    "do you ship {x} to {c}",
]
OWN_TOPICS = ["boots", "hiking boots", "a tent", "socks", "a rain jacket", "gaiters", "a sleeping bag",
              "trail shoes", "a backpack", "insoles"]  # fmt: skip
COUNTRIES = ["Norway", "Switzerland", "Austria", "Italy"]
FOLLOW_UPS = ["And for sale items?", "What about express?", "How long does that take?", "Thanks, and socks?"]
KNOWLEDGE = """# Returns
Unworn boots and shoes can be returned within 30 days of delivery for a full refund. Refunds are paid within
a week of the return arriving. Sale items can be exchanged but not refunded.

# Shipping
Standard shipping costs 4.90 EUR and takes 3 to 5 working days; it is free over 100 EUR. Express shipping
costs 12 EUR and arrives the next working day. We ship to every EU country, Norway and Switzerland.

# Care and repairs
Wax leather boots once a month and let them dry slowly, away from heat. Our repair service fixes tents for
free, including used ones; send them with the form on our website.
"""


def setup_django() -> None:
    if not os.environ.get("DATABASE_URL"):
        from config.embedded import embedded_database_url

        os.environ["DATABASE_URL"] = embedded_database_url(ROOT / ".parlor" / "pgdata", "parlor_bench_cache")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_bot(base_url: str, *, cache: bool):
    from accounts.models import Organization
    from chatbots.services import bot_create, source_set_bots
    from knowledge.models import SourceKind
    from knowledge.services import source_create, source_ingest

    organization = Organization.objects.create(name="Cache bench", slug=f"cache-bench-{time.time_ns()}")
    bot = bot_create(
        organization=organization, name="Acme Outdoor", provider="custom", base_url=base_url,
        model=f"gpt-4o-mini?words=60&tps=80&stall_headers=0.25&id={time.time_ns()}",
        answer_style="mixed", suggested_questions=SUGGESTED, answer_cache_enabled=cache,
    )  # fmt: skip
    bot.set_api_key("sk-bench")
    bot.save(update_fields=["api_key_encrypted"])
    source = source_create(
        organization=organization, kind=SourceKind.TEXT, title="Help centre", text=KNOWLEDGE
    )
    source_ingest(source_id=source.pk)
    source_set_bots(source=source, bots=[bot])
    return bot


def traffic(conversations: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    script = []
    for _ in range(conversations):
        if rng.random() < 0.6:
            first = rng.choices(SUGGESTED, weights=SUGGESTED_WEIGHTS)[0]
        else:
            first = rng.choice(OWN_TEMPLATES).format(x=rng.choice(OWN_TOPICS), c=rng.choice(COUNTRIES))
        turns = [first]
        if rng.random() < 0.3:
            turns.append(rng.choice(FOLLOW_UPS))
        script.append(turns)
    return script


async def replay(bot, script: list[list[str]]) -> None:
    from chatbots.pipeline import Accepted, ChatRequest, answer_message

    for number, turns in enumerate(script):
        conversation_id = None
        for text in turns:
            request = ChatRequest(bot=bot, text=text, channel="widget", visitor_id=f"visitor-{number}",
                                  conversation_id=conversation_id)  # fmt: skip
            async for event in answer_message(request):
                if isinstance(event, Accepted):
                    conversation_id = str(event.conversation_id)


def percentile(values: list[int], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def figures(bot) -> dict:
    from chatbots.models import Message, MessageRole

    answers = list(
        Message.objects.filter(conversation__bot=bot, role=MessageRole.ASSISTANT, status="complete")
    )
    hits = [m for m in answers if m.answered_from_cache]
    misses = [m for m in answers if not m.answered_from_cache]
    first_turns = Message.objects.filter(conversation__bot=bot, role=MessageRole.ASSISTANT).order_by(
        "conversation_id", "created_at"
    )
    seen, firsts = set(), 0
    for message in first_turns:
        if message.conversation_id not in seen:
            seen.add(message.conversation_id)
            firsts += 1
    # What each hit would have cost: the answer it repeats (same text, a model answer of this bot).
    cost_of = {m.text: m.cost_usd or Decimal(0) for m in misses}
    return {
        "answers": len(answers),
        "first_turns": firsts,
        "hits": len(hits),
        "model_cost": sum((m.cost_usd or Decimal(0) for m in misses), Decimal(0)),
        "saved": sum((cost_of.get(m.text, Decimal(0)) for m in hits), Decimal(0)),
        "ttft_hit": [m.first_token_ms for m in hits if m.first_token_ms is not None],
        "ttft_model": [m.first_token_ms for m in misses if m.first_token_ms is not None],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=400)
    parser.add_argument("--seed", type=int, default=26)
    args = parser.parse_args()
    setup_django()
    from chatbots.llm.testserver import FakeLLMServer

    results: dict = {}
    script = traffic(args.conversations, args.seed)
    with FakeLLMServer() as server:
        for cache in (True, False):
            bot = make_bot(server.base_url + "/v1", cache=cache)
            started = time.monotonic()
            asyncio.run(replay(bot, script))
            results[cache] = {**figures(bot), "seconds": time.monotonic() - started}
            if cache:  # a popular question asked again and again, nothing else running: a hit on its own
                from chatbots.models import Message

                mark = Message.objects.order_by("-pk").values_list("pk", flat=True).first()
                asyncio.run(replay(bot, [[SUGGESTED[0]]] * 50))
                results["alone"] = list(
                    Message.objects.filter(pk__gt=mark, answered_from_cache=True).values_list(
                        "first_token_ms", flat=True
                    )
                )
    on, off = results[True], results[False]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"replay: {args.conversations} conversations, {on['answers']} answers ({on['first_turns']} first turns)"
    )
    print(
        f"hit rate: {on['hits'] / on['answers']:.1%} of answers, {on['hits'] / on['first_turns']:.1%} of first turns"
    )
    print(f"model cost with cache {on['model_cost']:.6f} USD, without {off['model_cost']:.6f} USD "
          f"(saved {1 - on['model_cost'] / off['model_cost']:.1%}; hits' own cost 0, would have cost {on['saved']:.6f})")  # fmt: skip
    for name, values in (("hit", on["ttft_hit"]), ("model (same run)", on["ttft_model"])):
        print(f"TTFT {name}: p50 {statistics.median(values):.0f} ms, p95 {percentile(values, 95):.0f} ms, "
              f"n={len(values)}")  # fmt: skip
    alone = results["alone"]
    print(f"TTFT hit, one after another (50 repeats): p50 {statistics.median(alone):.0f} ms, "
          f"p95 {percentile(alone, 95):.0f} ms, n={len(alone)}")  # fmt: skip
    print(f"replay time: {on['seconds']:.1f} s with cache, {off['seconds']:.1f} s without")


if __name__ == "__main__":
    main()
