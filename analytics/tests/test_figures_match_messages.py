"""A month of generated traffic (what ``manage.py seed_traffic`` writes for a demo), rolled up by the
backfill command: every figure the API and the dashboard show equals a direct count over the messages."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.tests.factories import make_organization, owner_of
from analytics import histograms
from analytics.selectors import day_bounds
from analytics.tests.factories import make_seeded_traffic
from chatbots.models import Conversation, Message

pytestmark = pytest.mark.django_db

DAYS = 30


def direct_figures(organization_id: int, start: dt.date, end: dt.date) -> dict:
    """The range's figures counted message by message in Python, without the roll-up."""
    since, until = day_bounds(start)[0], day_bounds(end)[1]
    counts: Counter = Counter()
    visitors: set = set()
    latencies: list[int] = []
    by_model: Counter = Counter()
    cost = Decimal(0)
    messages = Message.objects.filter(
        organization_id=organization_id, created_at__gte=since, created_at__lt=until
    ).select_related("conversation")
    for message in messages:
        conversation = message.conversation
        if message.role == "user":
            counts["questions"] += 1
            day = message.created_at.astimezone(dt.UTC).date()
            visitors.add(
                (day, conversation.bot_id, conversation.channel, conversation.visitor_id or conversation.pk)
            )
            continue
        counts["answers"] += 1
        if message.status == "failed":
            kind = "failed"
        elif message.answered_from_faq:
            kind = "answers_faq"
        elif message.provider == "fallback_reply":
            kind = "answers_fallback"
        elif message.offline:
            kind = "answers_offline"
        else:
            kind = "answers_knowledge" if message.sources else "answers_model"
        counts[kind] += 1
        counts["incomplete"] += message.status == "incomplete"
        counts["thumbs_up"] += message.feedback == "up"
        counts["thumbs_down"] += message.feedback == "down"
        counts["prompt_tokens"] += message.prompt_tokens
        counts["completion_tokens"] += message.completion_tokens
        cost += message.cost_usd or 0
        if message.model:
            by_model[message.model] += 1
        if message.latency_ms is not None and message.status != "failed":
            latencies.append(message.latency_ms)
    counts["visitors"] = len(visitors)
    counts["conversations"] = Conversation.objects.filter(
        organization_id=organization_id, created_at__gte=since, created_at__lt=until
    ).count()
    return {"counts": counts, "cost": cost, "latencies": sorted(latencies), "by_model": by_model}


@pytest.fixture
def month():
    organization = make_organization(name="Month of traffic")
    make_seeded_traffic(organization=organization, messages=1_200, conversations=240, days=DAYS, seed=3)
    make_seeded_traffic(organization=make_organization(name="Neighbour"), messages=400, conversations=80,
                        days=DAYS, seed=4)  # fmt: skip
    call_command("analytics_rollup", days=DAYS + 1)
    today = timezone.now().date()
    start = today - dt.timedelta(days=DAYS - 1)
    return organization, start, today, direct_figures(organization.pk, start, today)


def test_the_api_summary_equals_a_direct_count_over_the_messages(client, month):
    organization, start, end, direct = month
    counts = direct["counts"]
    assert (
        counts["questions"] > 400
        and counts["answers_knowledge"]
        and counts["failed"]
        and counts["thumbs_down"]
    )
    client.force_login(owner_of(organization))
    body = client.get("/api/v1/analytics/summary/", {"start": start, "end": end}).json()["current"]
    for name in (
        "conversations", "visitors", "questions", "answers", "answers_faq", "answers_knowledge", "answers_model",
        "answers_fallback", "answers_offline", "failed", "incomplete", "thumbs_up", "thumbs_down",
        "prompt_tokens", "completion_tokens",
    ):  # fmt: skip
        assert body[name] == counts[name], name
    assert body["messages"] == counts["questions"] + counts["answers"]
    assert Decimal(body["cost_usd"]) == direct["cost"]
    assert {usage["model"]: usage["answers"] for usage in body["by_model"]} == dict(direct["by_model"])
    latencies = direct["latencies"]
    exact_p95 = latencies[-(-95 * len(latencies) // 100) - 1]  # nearest rank
    assert body["latency_p95_ms"] == histograms.percentile(histograms.from_values(latencies), 0.95)
    assert abs(body["latency_p95_ms"] - exact_p95) <= 0.1 * exact_p95  # one bucket: within ~9 %


def test_the_dashboard_shows_the_same_numbers_as_a_direct_count(client, month):
    organization, _, _, direct = month
    counts = direct["counts"]
    client.force_login(owner_of(organization))
    response = client.get("/admin/", {"range": str(DAYS)})
    section = response.context["sections"][0]
    headlines = {headline.label: headline.value for headline in section["headlines"]}
    assert headlines["Conversations"] == f"{counts['conversations']:,}"
    assert headlines["Messages"] == f"{counts['questions'] + counts['answers']:,}"
    rated = counts["thumbs_up"] + counts["thumbs_down"]
    assert headlines["Satisfaction"] == f"{counts['thumbs_up'] / rated * 100:.0f} %"
    block = re.search(r'<script id="analytics-chart-data" type="application/json">(.*?)</script>',
                      response.content.decode(), re.S)  # fmt: skip
    charts = {chart["id"]: chart for chart in json.loads(block.group(1))}

    def total(chart: str, label: str) -> float:
        return sum(next(d for d in charts[chart]["datasets"] if d["label"] == label)["data"])

    assert total("volume", "Questions") == counts["questions"]
    assert total("volume", "Conversations") == counts["conversations"]
    for label, name in (
        ("FAQ", "answers_faq"), ("Knowledge", "answers_knowledge"), ("Model without sources", "answers_model"),
        ("Offline", "answers_offline"), ("Fallback reply", "answers_fallback"), ("Failed", "failed"),
    ):  # fmt: skip
        assert total("resolution", label) == counts[name], label
    assert total("feedback", "Thumbs down") == counts["thumbs_down"]
    assert total("hours", "Questions") == counts["questions"]
    answers = dict(zip(charts["cost"]["labels"], charts["cost"]["datasets"][1]["data"], strict=True))
    assert answers == dict(direct["by_model"])
