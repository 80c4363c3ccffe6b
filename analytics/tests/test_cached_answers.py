"""Answers given from the answer cache are counted per day (and still in their kind), from the Message field
the chat pipeline sets."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from analytics.models import DailyStat
from analytics.selectors import figures_total
from analytics.services import daily_rollup
from analytics.tests.factories import make_bot, make_conversation_at, make_message_at, noon
from chatbots.models import MessageRole

pytestmark = pytest.mark.django_db
DAY = dt.date(2026, 3, 10)
SOURCES = [{"source_id": 1, "title": "Returns", "url": None, "page": None, "snippet": "…"}]


def test_cached_answers_are_counted_and_cost_nothing() -> None:
    bot = make_bot()
    for index, cached in enumerate([False, True, True]):
        conversation = make_conversation_at(bot=bot, when=noon(DAY), visitor_id=f"v{index}")
        make_message_at(conversation=conversation, when=noon(DAY), role=MessageRole.USER, text="Returns?")
        make_message_at(
            conversation=conversation, when=noon(DAY), role=MessageRole.ASSISTANT, text="30 days.",
            sources=SOURCES, answered_from_cache=cached, provider="cache" if cached else "openai",
            completion_tokens=0 if cached else 40, cost_usd=Decimal(0) if cached else Decimal("0.0004"),
        )  # fmt: skip
    daily_rollup(day=DAY)
    total = figures_total(rows=list(DailyStat.objects.filter(day=DAY)))
    assert (total.answers, total.answers_cached, total.answers_knowledge) == (3, 2, 3)
    assert total.completion_tokens == 40 and total.cost_usd == Decimal("0.0004")
