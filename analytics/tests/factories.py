"""Test data for analytics: conversations and messages placed at chosen times, and a day of mixed traffic
(every kind of answer, failures, feedback, timings and costs) built with chatbots' factories."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from analytics.selectors import day_bounds
from chatbots.models import Bot, Conversation, Message, MessageRole, MessageStatus
from chatbots.tests.factories import make_bot, make_conversation, make_message

__all__ = [
    "make_bot",
    "make_conversation_at",
    "make_message_at",
    "make_seeded_traffic",
    "make_traffic",
    "noon",
]


def noon(day: dt.date) -> dt.datetime:
    return day_bounds(day)[0] + dt.timedelta(hours=12)


def make_conversation_at(*, bot: Bot, when: dt.datetime, **fields: object) -> Conversation:
    conversation = make_conversation(bot=bot, **fields)
    Conversation.objects.filter(pk=conversation.pk).update(created_at=when, last_message_at=when)
    conversation.created_at = when
    return conversation


def make_message_at(*, conversation: Conversation, when: dt.datetime, **fields: object) -> Message:
    message = make_message(conversation=conversation, **fields)
    Message.objects.filter(pk=message.pk).update(created_at=when)
    message.created_at = when
    return message


def _answer(conversation: Conversation, when: dt.datetime, **fields: object) -> Message:
    return make_message_at(conversation=conversation, when=when, role=MessageRole.ASSISTANT, **fields)


SOURCES = [{"id": 1, "title": "Returns", "url": ""}]


def make_traffic(*, bot: Bot, day: dt.date, channel: str = "widget", visitor: str = "v1") -> list[Message]:
    """Two conversations of one visitor (and one without a visitor id) with every kind of outcome."""
    start = noon(day)
    first = make_conversation_at(bot=bot, when=start, channel=channel, visitor_id=visitor)
    second = make_conversation_at(bot=bot, when=start, channel=channel, visitor_id=visitor)
    anonymous = make_conversation_at(bot=bot, when=start, channel=channel, visitor_id="")
    tick = iter(range(1, 1000))

    def when() -> dt.datetime:
        return start + dt.timedelta(seconds=next(tick))

    messages = [make_message_at(conversation=first, when=when(), text="Return boots?")]
    messages += [
        _answer(first, when(), answered_from_faq=True, provider="faq", latency_ms=30, first_token_ms=25,
                feedback="up"),
        _answer(first, when(), sources=SOURCES, model="gpt-4o-mini", provider="openai", prompt_tokens=900,
                completion_tokens=120, cost_usd=Decimal("0.000207"), latency_ms=2400, first_token_ms=610,
                feedback="up"),
        _answer(second, when(), model="gpt-4o-mini", provider="openai", prompt_tokens=400,
                completion_tokens=80, cost_usd=Decimal("0.000108"), latency_ms=1800, first_token_ms=450,
                feedback="down"),
        _answer(second, when(), model="gpt-4o", provider="openai", prompt_tokens=1000, completion_tokens=10,
                cost_usd=Decimal("0.0026"), latency_ms=9000, first_token_ms=5200,
                status=MessageStatus.INCOMPLETE, error_code="client_disconnected"),
        _answer(second, when(), provider="fallback_reply", latency_ms=40, first_token_ms=35),
        _answer(anonymous, when(), offline=True, provider="offline", model="offline", sources=SOURCES,
                latency_ms=300, first_token_ms=120),
        _answer(anonymous, when(), model="gpt-4o", provider="openai", latency_ms=20000,
                status=MessageStatus.FAILED, error_code="llm_unavailable", text=""),
    ]  # fmt: skip
    messages += [
        make_message_at(conversation=second, when=when(), text="And shipping?"),
        make_message_at(conversation=anonymous, when=when(), text="Hi"),
        make_message_at(
            conversation=anonymous, when=when(), text="Spam", status=MessageStatus.FAILED,
            error_code="rate_limited",
        ),
    ]  # fmt: skip
    return messages


def make_seeded_traffic(*, organization, messages: int, conversations: int, days: int, seed: int = 7):
    """Generated traffic of several bots over ``days`` days (``manage.py seed_traffic``'s generator)."""
    from chatbots.traffic import traffic_seed

    return traffic_seed(
        organization=organization, messages=messages, conversations=conversations, days=days, seed=seed
    )


def isolation_factory(model: type, organization):  # type: ignore[no-untyped-def]
    """A day of figures for the tenant isolation walk (accounts.testing): today's row, whose model name and
    error code carry the organization's marker, so a dashboard or API answer that leaked another
    organization's figures would show that marker (numbers alone could not be told apart)."""
    from django.utils import timezone

    from analytics.models import DailyStat

    if model is not DailyStat:
        return None
    marker = f"leak{organization.slug.replace('-', '')}"  # the marker accounts.testing.TenantObjects checks
    bot = Bot.objects.filter(organization=organization).order_by("pk").first() or make_bot(
        organization=organization
    )
    return DailyStat.objects.create(
        organization=organization, bot=bot, channel="widget", day=timezone.now().date(), computed_at=timezone.now(),
        questions=3, answers=3, answers_model=3, cost_usd=Decimal("0.01"), errors={f"{marker}-error": 1},
        by_model={f"{marker}-model": {"answers": 3, "prompt_tokens": 9, "completion_tokens": 9, "cost_usd": "0.01"}},
    )  # fmt: skip
