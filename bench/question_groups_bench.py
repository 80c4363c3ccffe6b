"""How long grouping similar questions takes (the review queue and the dashboard's question panels).

    .venv/bin/python bench/question_groups_bench.py [--sizes 500,2000,5000] [--runs 5]

Questions come from 120 topics in 3 wordings each (360 texts, embedded once with the serving model);
each run draws ``size`` of them with a Zipf-like skew (a few questions are asked very often, as on a real
site) and times ``chatbots.question_groups.group_similar_questions`` alone (the database part is two
indexed queries). Prints a Markdown table for BENCHMARKS.md: median time, groups found, and how many
groups mixed topics (should be 0) or split one topic's wordings (paraphrases the model scores under the
FAQ threshold).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OBJECTS = [
    "boots", "tent", "sleeping bag", "rain jacket", "backpack", "hiking poles", "stove", "gift card",
    "order", "parcel", "invoice", "account", "password", "newsletter", "discount code", "kayak",
    "bike", "helmet", "climbing rope", "headlamp", "water filter", "map", "compass", "gloves",
    "ski pass", "camping chair", "cooler", "lantern", "hammock", "tarp",
]  # fmt: skip
ASKS = [
    ("How do I return my {o}?", "Can I send my {o} back?", "What is the return policy for a {o}?"),
    ("How much does shipping a {o} cost?", "What are the delivery costs for a {o}?", "Is shipping free for a {o}?"),
    ("Can I repair my {o} with you?", "Do you fix a broken {o}?", "Is there a repair service for a {o}?"),
    ("Is the {o} in stock?", "Do you have the {o} available?", "When will the {o} be back in stock?"),
]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="500,2000,5000")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from chatbots.question_groups import QuestionItem, group_similar_questions
    from knowledge.embedders import DEFAULT_LOCAL_MODEL, faq_min_similarity, get_embedder

    embedder = get_embedder(DEFAULT_LOCAL_MODEL)
    threshold = faq_min_similarity(DEFAULT_LOCAL_MODEL)
    topics = [[ask.format(o=o) for ask in wordings] for o in OBJECTS for wordings in ASKS]
    vectors = {text: embedder.embed_query(text) for topic in topics for text in topic}
    topic_of = {text: n for n, topic in enumerate(topics) for text in topic}
    weights = [1 / (rank + 1) for rank in range(len(topics))]
    rng = random.Random(7)
    now = datetime.now(UTC)

    print(
        f"model {DEFAULT_LOCAL_MODEL}, threshold {threshold}, {len(topics)} topics x 3 wordings, {os.cpu_count()} CPUs"
    )
    print("| questions | median ms | groups | topics drawn | mixed groups | topics split |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size in [int(s) for s in args.sizes.split(",")]:
        drawn = [rng.choice(topics[rng.choices(range(len(topics)), weights)[0]]) for _ in range(size)]
        items = [
            QuestionItem(question=t, conversation_id=None, asked_at=now, vector=vectors[t]) for t in drawn
        ]
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            groups = group_similar_questions(items, min_similarity=threshold)
            times.append((time.perf_counter() - started) * 1000)
        mixed = sum(1 for g in groups if len({topic_of[i.question] for i in g.items}) > 1)
        per_topic: dict[int, int] = {}
        for g in groups:
            for topic in {topic_of[i.question] for i in g.items}:
                per_topic[topic] = per_topic.get(topic, 0) + 1
        split = sum(1 for n in per_topic.values() if n > 1)
        print(
            f"| {size} | {statistics.median(times):.1f} | {len(groups)} | {len(per_topic)} | {mixed} | {split} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
