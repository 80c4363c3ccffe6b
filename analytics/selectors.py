"""Reads of analytics: the daily rows of an organization and the figures of a date range built from them.

Counts of a range are sums of daily rows; percentiles come from the merged histograms
(``analytics.histograms``), never from daily percentiles. ``visitors`` of a range is a sum of daily
unique visitors (a visitor who returns on another day counts again).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from analytics import histograms
from analytics.exceptions import InvalidDateRange
from analytics.models import DailyStat
from chatbots.models import Conversation, Feedback, Message

COUNTS = (
    "conversations", "visitors", "questions", "refused", "answers", "answers_faq", "answers_knowledge",
    "answers_model", "answers_fallback", "answers_offline", "failed", "incomplete", "answers_cached",
    "thumbs_up", "thumbs_down", "prompt_tokens", "completion_tokens",
)  # fmt: skip


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC day as [start, end)."""
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


@dataclass
class ModelUsage:
    answers: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)


@dataclass
class Figures:
    """What a set of daily rows adds up to."""

    conversations: int = 0
    visitors: int = 0
    questions: int = 0
    refused: int = 0
    answers: int = 0
    answers_faq: int = 0
    answers_knowledge: int = 0
    answers_model: int = 0
    answers_fallback: int = 0
    answers_offline: int = 0
    failed: int = 0
    incomplete: int = 0
    answers_cached: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    errors: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, ModelUsage] = field(default_factory=dict)
    ttft_histogram: list[int] = field(default_factory=histograms.empty)
    latency_histogram: list[int] = field(default_factory=histograms.empty)
    questions_by_hour: list[int] = field(default_factory=lambda: [0] * 24)

    @property
    def messages(self) -> int:
        return self.questions + self.answers

    @property
    def ttft_p50_ms(self) -> int | None:
        return histograms.percentile(self.ttft_histogram, 0.5)

    @property
    def ttft_p95_ms(self) -> int | None:
        return histograms.percentile(self.ttft_histogram, 0.95)

    @property
    def latency_p50_ms(self) -> int | None:
        return histograms.percentile(self.latency_histogram, 0.5)

    @property
    def latency_p95_ms(self) -> int | None:
        return histograms.percentile(self.latency_histogram, 0.95)

    def add(self, row: DailyStat | Figures) -> None:
        """Add a daily row (or other figures) in place. Lists are added with ``zip`` in one pass: a
        dashboard of 90 days adds hundreds of rows per request."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(row, name))
        self.cost_usd += row.cost_usd
        for code, n in row.errors.items():
            self.errors[code] = self.errors.get(code, 0) + n
        for model, usage in row.by_model.items():
            total = self.by_model.setdefault(model, ModelUsage())
            if isinstance(usage, ModelUsage):
                total.answers += usage.answers
                total.prompt_tokens += usage.prompt_tokens
                total.completion_tokens += usage.completion_tokens
                total.cost_usd += usage.cost_usd
            else:
                total.answers += usage["answers"]
                total.prompt_tokens += usage["prompt_tokens"]
                total.completion_tokens += usage["completion_tokens"]
                total.cost_usd += Decimal(usage["cost_usd"])
        self.ttft_histogram = [a + b for a, b in zip(self.ttft_histogram, row.ttft_histogram, strict=True)]
        self.latency_histogram = [
            a + b for a, b in zip(self.latency_histogram, row.latency_histogram, strict=True)
        ]
        self.questions_by_hour = [
            a + b for a, b in zip(self.questions_by_hour, row.questions_by_hour, strict=True)
        ]


@dataclass
class DayFigures:
    day: dt.date
    figures: Figures


def daily_stats(
    *, organization_id: int | None, start: dt.date, end: dt.date, bot_ids: Iterable[int] | None = None
) -> QuerySet[DailyStat]:
    """The organization's rows from ``start`` to ``end`` (both included), of some bots if given.
    ``organization_id=None`` means every organization: for the deployment's operators only."""
    rows = DailyStat.objects.filter(day__gte=start, day__lte=end)
    if organization_id is not None:
        rows = rows.filter(organization_id=organization_id)
    if bot_ids is not None:
        rows = rows.filter(bot_id__in=list(bot_ids))
    return rows


def figures_total(*, rows: Iterable[DailyStat]) -> Figures:
    total = Figures()
    for row in rows:
        total.add(row)
    return total


def figures_by_day(*, rows: Iterable[DailyStat], start: dt.date, end: dt.date) -> list[DayFigures]:
    """One entry per day from ``start`` to ``end``, days without rows included (as zeros)."""
    days = {start + dt.timedelta(days=i): Figures() for i in range((end - start).days + 1)}
    for row in rows:
        if row.day in days:
            days[row.day].add(row)
    return [DayFigures(day=day, figures=figures) for day, figures in days.items()]


def stale_days(*, since: dt.date, until: dt.date) -> list[dt.date]:
    """Days whose stored messages or conversations differ from what their rows counted: erased or added
    since the day was rolled up, or feedback changed."""
    start, _ = day_bounds(since)
    _, end = day_bounds(until)
    utc_day = TruncDate("created_at", tzinfo=dt.UTC)
    stored = {
        values["day"]: (values["n"], values["up"], values["down"], values["c"])
        for values in DailyStat.objects.filter(day__gte=since, day__lte=until)
        .values("day")
        .annotate(
            n=Sum("questions") + Sum("answers"),
            up=Sum("thumbs_up"),
            down=Sum("thumbs_down"),
            c=Sum("conversations"),
        )
    }
    actual: dict[dt.date, tuple[int, int, int, int]] = {}
    for values in (
        Message.objects.filter(created_at__gte=start, created_at__lt=end)
        .values(day=utc_day)
        .annotate(
            n=Count("pk"),
            up=Count("pk", filter=Q(feedback=Feedback.UP)),
            down=Count("pk", filter=Q(feedback=Feedback.DOWN)),
        )
    ):
        actual[values["day"]] = (values["n"], values["up"], values["down"], 0)
    for values in (
        Conversation.objects.filter(created_at__gte=start, created_at__lt=end)
        .values(day=utc_day)
        .annotate(c=Count("pk"))
    ):
        n, up, down, _ = actual.get(values["day"], (0, 0, 0, 0))
        actual[values["day"]] = (n, up, down, values["c"])
    return sorted(day for day in stored.keys() | actual.keys() if stored.get(day) != actual.get(day))


MAX_RANGE_DAYS = 366


@dataclass(frozen=True)
class DateRange:
    """Days from ``start`` to ``end``, both included (UTC)."""

    start: dt.date
    end: dt.date

    @classmethod
    def of(cls, *, start: dt.date | None, end: dt.date | None, today: dt.date, default_days: int = 30):
        """The range asked for: ``end`` defaults to today, ``start`` to ``default_days`` days up to end."""
        end = end or today
        start = start or end - dt.timedelta(days=default_days - 1)
        if start > end or (end - start).days + 1 > MAX_RANGE_DAYS:
            raise InvalidDateRange()
        return cls(start=start, end=end)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> DateRange:
        """The period of the same length just before (for "change against the previous period")."""
        end = self.start - dt.timedelta(days=1)
        return DateRange(start=end - dt.timedelta(days=self.days - 1), end=end)


@dataclass
class Summary:
    range: DateRange
    previous_range: DateRange
    current: Figures
    previous: Figures


def analytics_summary(
    *, organization_id: int | None, date_range: DateRange, bot_ids: Iterable[int] | None
) -> Summary:
    """The figures of a range and of the period before it, for some of the organization's bots
    (``None``: every organization, every bot — the operators' view)."""
    bot_ids = None if bot_ids is None else list(bot_ids)
    previous = date_range.previous()
    rows = daily_stats(
        organization_id=organization_id, start=previous.start, end=date_range.end, bot_ids=bot_ids
    )
    current, before = Figures(), Figures()
    for row in rows:
        (current if row.day >= date_range.start else before).add(row)
    return Summary(range=date_range, previous_range=previous, current=current, previous=before)


@dataclass
class Report:
    """What the dashboard shows: the range's figures, the period before, and each day of the range."""

    summary: Summary
    days: list[DayFigures]


def analytics_report(
    *, organization_id: int | None, date_range: DateRange, bot_ids: Iterable[int] | None
) -> Report:
    """Summary and series from one read of the rows: each row is added once to its day (or to the
    previous period), and the range's total is the sum of its days, not of its rows again."""
    bot_ids = None if bot_ids is None else list(bot_ids)
    previous_range = date_range.previous()
    rows = daily_stats(
        organization_id=organization_id, start=previous_range.start, end=date_range.end, bot_ids=bot_ids
    ).defer("computed_at", "organization_id")
    days = figures_by_day(rows=[], start=date_range.start, end=date_range.end)
    by_day = {entry.day: entry.figures for entry in days}
    previous = Figures()
    for row in rows:
        by_day.get(row.day, previous).add(row)
    current = Figures()
    for entry in days:
        current.add(entry.figures)
    summary = Summary(range=date_range, previous_range=previous_range, current=current, previous=previous)
    return Report(summary=summary, days=days)


def analytics_series(
    *, organization_id: int | None, date_range: DateRange, bot_ids: Iterable[int] | None
) -> list[DayFigures]:
    """The figures of each day of a range, for some of the organization's bots (``None``: all)."""
    rows = daily_stats(
        organization_id=organization_id, start=date_range.start, end=date_range.end, bot_ids=bot_ids
    )
    return figures_by_day(rows=rows, start=date_range.start, end=date_range.end)
