"""Writes of analytics: rebuilding daily aggregates from the messages chatbots stored.

``daily_rollup`` recomputes one UTC day from scratch in one transaction (delete the day's rows, insert
the fresh ones), so running it again, late, or twice at once changes nothing but stale figures. Days
whose messages changed after their roll-up (a conversation erased, feedback given the next week) are
found by ``rollup_stale_days`` and rebuilt the same way.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.db import connection, transaction
from django.db.models import Case, CharField, Count, F, Func, IntegerField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Cast, ExtractHour
from django.utils import timezone

from analytics import histograms
from analytics.models import DailyStat
from analytics.selectors import day_bounds, stale_days
from chatbots.models import Conversation, Feedback, Message, MessageRole, MessageStatus

# The first key of pg_advisory_xact_lock(int, int): "analytics roll-up"; the second is the day.
ROLLUP_LOCK_NAMESPACE = 0x50524C55

FALLBACK_PROVIDER = "fallback_reply"  # chatbots.pipeline stores the bot's fixed reply under this name

Key = tuple[int, int, str]  # organization id, bot id, channel
KEY_FIELDS = {
    "k_org": F("organization_id"),
    "k_bot": F("conversation__bot_id"),
    "k_chan": F("conversation__channel"),
}

USER = Q(role=MessageRole.USER)
ASSISTANT = Q(role=MessageRole.ASSISTANT)
ANSWERED = ASSISTANT & ~Q(status=MessageStatus.FAILED)
FAQ = Q(answered_from_faq=True)
FALLBACK = Q(provider=FALLBACK_PROVIDER)
OFFLINE = Q(offline=True)
NO_SOURCES = Q(sources=[])
# Each answered message counts as exactly one kind, in this order of precedence.
KINDS = {
    "answers_faq": ANSWERED & FAQ,
    "answers_fallback": ANSWERED & ~FAQ & FALLBACK,
    "answers_offline": ANSWERED & ~FAQ & ~FALLBACK & OFFLINE,
    "answers_knowledge": ANSWERED & ~FAQ & ~FALLBACK & ~OFFLINE & ~NO_SOURCES,
    "answers_model": ANSWERED & ~FAQ & ~FALLBACK & ~OFFLINE & NO_SOURCES,
}


class WidthBucket(Func):
    """Postgres ``width_bucket(value, thresholds)``: the histogram bucket of a duration."""

    function = "width_bucket"
    output_field = IntegerField()

    def __init__(self, expression: str) -> None:
        bounds = Value(histograms.BOUNDS_MS, output_field=ArrayField(IntegerField()))
        super().__init__(F(expression), bounds)


@transaction.atomic
def daily_rollup(*, day: dt.date, organization_id: int | None = None) -> int:
    """Rebuild the aggregates of one UTC day (of one organization, or all) from the stored messages.

    Returns the number of rows written. Two roll-ups of the same day wait for each other (an advisory
    lock held until commit), so concurrent or duplicated runs never collide on the unique rows.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ROLLUP_LOCK_NAMESPACE, day.toordinal()])
    rows = _compute_day(day=day, organization_id=organization_id)
    stale = DailyStat.objects.filter(day=day)
    if organization_id is not None:
        stale = stale.filter(organization_id=organization_id)
    stale.delete()
    DailyStat.objects.bulk_create(rows)
    return len(rows)


def rollup_stale_days(*, since: dt.date, until: dt.date | None = None) -> list[dt.date]:
    """Rebuild every day from ``since`` whose messages no longer match its aggregates (data erased,
    arrived late, or feedback changed afterwards); returns the days rebuilt."""
    days = stale_days(since=since, until=until or timezone.now().date())
    for day in days:
        daily_rollup(day=day)
    return days


def _compute_day(*, day: dt.date, organization_id: int | None) -> list[DailyStat]:
    start, end = day_bounds(day)
    messages = Message.objects.filter(created_at__gte=start, created_at__lt=end)
    conversations = Conversation.objects.filter(created_at__gte=start, created_at__lt=end)
    if organization_id is not None:
        messages = messages.filter(organization_id=organization_id)
        conversations = conversations.filter(organization_id=organization_id)

    now = timezone.now()
    rows: dict[Key, DailyStat] = {}

    def row(values: dict) -> DailyStat:
        key = (values["k_org"], values["k_bot"], values["k_chan"])
        if key not in rows:
            rows[key] = DailyStat(
                organization_id=key[0], bot_id=key[1], channel=key[2], day=day, computed_at=now
            )
        return rows[key]

    for values in _counts(messages):
        stat = row(values)
        for name in (
            "visitors", "questions", "refused", "answers", *KINDS, "failed", "incomplete",
            "answers_cached", "thumbs_up", "thumbs_down",
        ):  # fmt: skip
            setattr(stat, name, values[name])
    for values in conversations.values(
        k_org=F("organization_id"), k_bot=F("bot_id"), k_chan=F("channel")
    ).annotate(n=Count("pk")):
        row(values).conversations = values["n"]
    for values in (
        messages.exclude(error_code="").values(**KEY_FIELDS, code=F("error_code")).annotate(n=Count("pk"))
    ):
        row(values).errors[values["code"]] = values["n"]
    for field, selection in (
        ("ttft_histogram", messages.filter(ASSISTANT, first_token_ms__isnull=False).values(
            **KEY_FIELDS, bucket=WidthBucket("first_token_ms"))),
        ("latency_histogram", messages.filter(ANSWERED, latency_ms__isnull=False).values(
            **KEY_FIELDS, bucket=WidthBucket("latency_ms"))),
    ):  # fmt: skip
        for values in selection.annotate(n=Count("pk")):
            getattr(row(values), field)[values["bucket"]] = values["n"]
    for values in (
        messages.filter(USER)
        .values(**KEY_FIELDS, hour=ExtractHour("created_at", tzinfo=dt.UTC))
        .annotate(n=Count("pk"))
    ):
        row(values).questions_by_hour[values["hour"]] = values["n"]
    _add_usage(messages, row)
    return list(rows.values())


def _counts(messages: QuerySet[Message]) -> QuerySet:
    # A conversation without a visitor id (an API caller that sent none) counts as its own visitor.
    visitor = Case(
        When(conversation__visitor_id="", then=Cast("conversation_id", CharField())),
        default=F("conversation__visitor_id"),
        output_field=CharField(),
    )
    return messages.values(**KEY_FIELDS).annotate(
        visitors=Count(visitor, filter=USER, distinct=True),
        questions=Count("pk", filter=USER),
        refused=Count("pk", filter=USER & Q(status=MessageStatus.FAILED)),
        answers=Count("pk", filter=ASSISTANT),
        **{name: Count("pk", filter=condition) for name, condition in KINDS.items()},
        failed=Count("pk", filter=ASSISTANT & Q(status=MessageStatus.FAILED)),
        incomplete=Count("pk", filter=ASSISTANT & Q(status=MessageStatus.INCOMPLETE)),
        answers_cached=Count("pk", filter=ANSWERED & Q(answered_from_cache=True)),
        thumbs_up=Count("pk", filter=ASSISTANT & Q(feedback=Feedback.UP)),
        thumbs_down=Count("pk", filter=ASSISTANT & Q(feedback=Feedback.DOWN)),
    )


def _add_usage(messages: QuerySet[Message], row) -> None:
    """Tokens and cost per model, and their totals."""
    usage = (
        messages.filter(ASSISTANT)
        .values(**KEY_FIELDS, model_name=F("model"))
        .annotate(
            n=Count("pk"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cost=Sum("cost_usd"),
        )
    )
    for values in usage:
        stat = row(values)
        cost = values["cost"] or Decimal(0)
        stat.prompt_tokens += values["prompt"] or 0
        stat.completion_tokens += values["completion"] or 0
        stat.cost_usd += cost
        if values["model_name"]:
            stat.by_model[values["model_name"]] = {
                "answers": values["n"],
                "prompt_tokens": values["prompt"] or 0,
                "completion_tokens": values["completion"] or 0,
                "cost_usd": str(cost),
            }
