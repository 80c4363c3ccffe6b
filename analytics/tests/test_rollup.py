"""The daily roll-up against a direct count over the stored messages: exact, idempotent, and corrected
when a day's messages change afterwards."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from django.core.management import call_command

from analytics import histograms
from analytics.models import DailyStat
from analytics.selectors import day_bounds, figures_total
from analytics.services import daily_rollup, rollup_stale_days
from analytics.tests.factories import make_bot, make_conversation_at, make_message_at, make_traffic, noon
from chatbots.models import Conversation, Message
from chatbots.services import conversation_delete

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 3, 10)


def direct_count(day: dt.date) -> dict[tuple[int, str], dict]:
    """What each (bot, channel) did on the day, counted message by message in Python."""
    start, end = day_bounds(day)
    rows: dict[tuple[int, str], dict] = defaultdict(lambda: defaultdict(int))
    visitors: dict[tuple[int, str], set] = defaultdict(set)
    for message in Message.objects.filter(created_at__gte=start, created_at__lt=end).select_related(
        "conversation"
    ):
        conv = message.conversation
        key = (conv.bot_id, conv.channel)
        row = rows[key]
        if message.role == "user":
            row["questions"] += 1
            row.setdefault("hours", [0] * 24)[message.created_at.astimezone(dt.UTC).hour] += 1
            row["refused"] += message.status == "failed"
            visitors[key].add(conv.visitor_id or str(conv.pk))
            continue
        row["answers"] += 1
        if message.status == "failed":
            row["failed"] += 1
        elif message.answered_from_faq:
            row["answers_faq"] += 1
        elif message.provider == "fallback_reply":
            row["answers_fallback"] += 1
        elif message.offline:
            row["answers_offline"] += 1
        elif message.sources:
            row["answers_knowledge"] += 1
        else:
            row["answers_model"] += 1
        row["incomplete"] += message.status == "incomplete"
        row["thumbs_up"] += message.feedback == "up"
        row["thumbs_down"] += message.feedback == "down"
        row["prompt_tokens"] += message.prompt_tokens
        row["completion_tokens"] += message.completion_tokens
        row["cost_usd"] += message.cost_usd or 0
        row.setdefault("latencies", [])
        if message.latency_ms is not None and message.status != "failed":
            row["latencies"].append(message.latency_ms)
    for key, seen in visitors.items():
        rows[key]["visitors"] = len(seen)
    for message in Message.objects.filter(created_at__gte=start, created_at__lt=end).exclude(error_code=""):
        conv = message.conversation
        rows[(conv.bot_id, conv.channel)].setdefault("errors", Counter())[message.error_code] += 1
    return rows


def stored(day: dt.date) -> dict[tuple[int, str], DailyStat]:
    return {(row.bot_id, row.channel): row for row in DailyStat.objects.filter(day=day)}


def snapshot() -> list[dict]:
    return list(DailyStat.objects.order_by("day", "bot_id", "channel").values())


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("id", "computed_at")} for row in rows]


def test_rollup_matches_a_direct_count_over_the_messages():
    bot = make_bot()
    other_bot = make_bot(organization=bot.organization, name="Other")
    make_traffic(bot=bot, day=DAY)
    make_traffic(bot=bot, day=DAY, channel="api", visitor="v2")
    make_traffic(bot=other_bot, day=DAY)
    # Just outside the day on both sides: never counted in it.
    conversation = make_conversation_at(bot=bot, when=noon(DAY))
    make_message_at(conversation=conversation, when=day_bounds(DAY)[0] - dt.timedelta(microseconds=1))
    make_message_at(conversation=conversation, when=day_bounds(DAY)[1])

    assert daily_rollup(day=DAY) == 3
    expected, rows = direct_count(DAY), stored(DAY)
    assert rows.keys() == expected.keys()
    for key, want in expected.items():
        row = rows[key]
        for name in (
            "questions", "refused", "visitors", "answers", "answers_faq", "answers_knowledge", "answers_model",
            "answers_fallback", "answers_offline", "failed", "incomplete", "thumbs_up", "thumbs_down",
            "prompt_tokens", "completion_tokens",
        ):  # fmt: skip
            assert getattr(row, name) == want[name], (key, name)
        assert row.cost_usd == want["cost_usd"]
        assert row.errors == dict(want["errors"])
        assert row.latency_histogram == histograms.from_values(want["latencies"])
        assert row.questions_by_hour == want["hours"]
        assert row.organization_id == bot.organization_id
    widget = rows[(bot.pk, "widget")]
    # Three conversations started at noon plus the one around the day's edges; two visitors (v1 and the
    # conversation without an id); tokens and cost by model.
    assert (widget.conversations, widget.visitors, widget.questions, widget.answers) == (4, 2, 4, 7)
    kinds = (
        "answers_faq",
        "answers_knowledge",
        "answers_model",
        "answers_fallback",
        "answers_offline",
        "failed",
    )
    assert sum(getattr(widget, kind) for kind in kinds) == widget.answers
    assert widget.by_model == {
        "gpt-4o-mini": {
            "answers": 2,
            "prompt_tokens": 1300,
            "completion_tokens": 200,
            "cost_usd": "0.000315",
        },
        "gpt-4o": {"answers": 2, "prompt_tokens": 1000, "completion_tokens": 10, "cost_usd": "0.002600"},
        "offline": {"answers": 1, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": "0"},
    }
    assert widget.errors == {"client_disconnected": 1, "llm_unavailable": 1, "rate_limited": 1}
    assert sum(widget.ttft_histogram) == 6 and sum(widget.latency_histogram) == 6


def test_running_the_rollup_again_changes_nothing():
    bot = make_bot()
    make_traffic(bot=bot, day=DAY)
    make_traffic(bot=bot, day=DAY + dt.timedelta(days=1))
    for day in (DAY, DAY + dt.timedelta(days=1)):
        daily_rollup(day=day)
    before = comparable(snapshot())
    for day in (DAY, DAY + dt.timedelta(days=1)):
        daily_rollup(day=day)
        daily_rollup(day=day, organization_id=bot.organization_id)
    assert comparable(snapshot()) == before and len(before) == 2
    assert rollup_stale_days(since=DAY - dt.timedelta(days=5), until=DAY + dt.timedelta(days=5)) == []


def test_an_erased_conversation_corrects_its_day_only():
    bot = make_bot()
    messages = make_traffic(bot=bot, day=DAY)
    make_traffic(bot=bot, day=DAY + dt.timedelta(days=1))
    for day in (DAY, DAY + dt.timedelta(days=1)):
        daily_rollup(day=day)
    next_day = comparable(list(DailyStat.objects.filter(day=DAY + dt.timedelta(days=1)).values()))

    conversation_delete(conversation=messages[0].conversation)
    assert rollup_stale_days(since=DAY - dt.timedelta(days=5), until=DAY + dt.timedelta(days=5)) == [DAY]
    row = stored(DAY)[(bot.pk, "widget")]
    want = direct_count(DAY)[(bot.pk, "widget")]
    assert (row.questions, row.answers, row.thumbs_up) == (want["questions"], want["answers"], 0)
    assert row.conversations == 2 and "gpt-4o-mini" in row.by_model
    assert comparable(list(DailyStat.objects.filter(day=DAY + dt.timedelta(days=1)).values())) == next_day


def test_a_day_whose_messages_are_all_gone_loses_its_rows():
    bot = make_bot()
    messages = make_traffic(bot=bot, day=DAY)
    daily_rollup(day=DAY)
    for conversation in {message.conversation for message in messages}:
        conversation_delete(conversation=conversation)
    assert rollup_stale_days(since=DAY, until=DAY) == [DAY]
    assert not DailyStat.objects.exists()


def test_an_erased_conversation_without_messages_that_day_corrects_its_day():
    bot = make_bot()
    conversation = make_conversation_at(bot=bot, when=noon(DAY))  # its messages come the next day
    make_message_at(conversation=conversation, when=noon(DAY + dt.timedelta(days=1)))
    for day in (DAY, DAY + dt.timedelta(days=1)):
        daily_rollup(day=day)
    assert stored(DAY)[(bot.pk, "widget")].conversations == 1
    assert rollup_stale_days(since=DAY, until=DAY + dt.timedelta(days=1)) == []
    conversation_delete(conversation=conversation)
    assert rollup_stale_days(since=DAY, until=DAY + dt.timedelta(days=1)) == [DAY, DAY + dt.timedelta(days=1)]
    assert not DailyStat.objects.exists()


def test_late_feedback_is_found_and_counted():
    bot = make_bot()
    messages = make_traffic(bot=bot, day=DAY)
    daily_rollup(day=DAY)
    Message.objects.filter(pk=messages[3].pk).update(feedback="up")  # was "down"
    assert rollup_stale_days(since=DAY, until=DAY) == [DAY]
    row = stored(DAY)[(bot.pk, "widget")]
    assert (row.thumbs_up, row.thumbs_down) == (3, 0)


def test_an_organization_rollup_leaves_other_organizations_alone():
    bot, other = make_bot(), make_bot()
    make_traffic(bot=bot, day=DAY)
    make_traffic(bot=other, day=DAY)
    daily_rollup(day=DAY)
    Conversation.objects.filter(organization=other.organization).delete()
    daily_rollup(day=DAY, organization_id=bot.organization_id)
    assert set(DailyStat.objects.values_list("bot_id", flat=True)) == {bot.pk, other.pk}
    daily_rollup(day=DAY, organization_id=other.organization_id)
    assert set(DailyStat.objects.values_list("bot_id", flat=True)) == {bot.pk}


def test_figures_of_several_days_add_up_and_merge_histograms():
    bot = make_bot()
    for offset in range(3):
        make_traffic(bot=bot, day=DAY + dt.timedelta(days=offset))
        daily_rollup(day=DAY + dt.timedelta(days=offset))
    total = figures_total(rows=DailyStat.objects.all())
    assert (total.questions, total.answers, total.thumbs_up, total.thumbs_down) == (12, 21, 6, 3)
    assert total.cost_usd == Decimal("0.008745")
    assert total.by_model["gpt-4o"].answers == 6
    # latencies of the answered messages: 30, 40, 300, 1800, 2400, 9000 ms on each day
    assert total.latency_p50_ms == histograms.representative(histograms.bucket_of(300))
    assert total.latency_p95_ms == histograms.representative(histograms.bucket_of(9000))


def test_backfill_command_rebuilds_the_last_days(capsys):
    bot = make_bot()
    today = dt.date.today()
    make_traffic(bot=bot, day=today - dt.timedelta(days=2))
    call_command("analytics_rollup", "--days", "3")
    assert list(DailyStat.objects.values_list("day", flat=True)) == [today - dt.timedelta(days=2)]
    assert capsys.readouterr().out.count(" rows") == 3
