"""The analytics section of the admin's home: filters, headline numbers and charts with data tables.

accounts renders the dashboard and knows no analytics; config lists ``dashboard_section`` in
``ADMIN_DASHBOARD_SECTIONS`` and accounts includes what it returns (a template and its context).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from analytics.exceptions import InvalidDateRange
from analytics.selectors import DateRange, Figures, analytics_report
from chatbots.models import Bot

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import Organization

RANGES = {"7": 7, "30": 30, "90": 90}
DEFAULT_RANGE = "30"


@dataclass
class Dataset:
    label: str
    data: list[float | int | None]


@dataclass
class Chart:
    """One chart and, from the same numbers, its data table (the text alternative)."""

    id: str
    title: str
    kind: str  # "line" or "bar"
    labels: list[str]
    datasets: list[Dataset]
    stacked: bool = False
    unit: str = ""
    description: str = ""

    @property
    def rows(self) -> list[tuple[str, list[Any]]]:
        return [(label, [d.data[i] for d in self.datasets]) for i, label in enumerate(self.labels)]

    @property
    def table_body(self) -> str:
        """The data table's rows as HTML, built here rather than cell by cell in the template: a 90-day
        range has ~2,000 cells, which took the template longer than everything else on the page. Labels
        (days, hours, model names) are escaped; the values are numbers."""
        return mark_safe(  # noqa: S308 - every label and non-numeric value is escaped
            "".join(
                f'<tr><th scope="row" class="pr-4 font-normal">{escape(label)}</th>'
                + "".join(f'<td class="pr-4">{_cell(v)}</td>' for v in values)
                + "</tr>"
                for label, values in self.rows
            )
        )


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")  # costs: never 1e-05
    return str(value) if isinstance(value, int) else escape(value)


@dataclass
class Headline:
    label: str
    value: str
    change: str = ""  # "+12 %" against the previous period, "" when there is nothing to compare
    trend: str = ""  # "good", "bad" or "" (colours the change)
    hint: str = ""


@dataclass
class Filters:
    range: str
    start: dt.date
    end: dt.date
    bot: str
    error: str = ""
    choices: list[tuple[str, str]] = field(
        default_factory=lambda: [("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days"),
                                 ("custom", "Custom")]
    )  # fmt: skip


def _parse_date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _filters(request: HttpRequest, bots: list[Bot]) -> tuple[Filters, DateRange, list[int] | None]:
    params = request.GET
    today = timezone.now().date()
    choice = params.get("range", DEFAULT_RANGE)
    error = ""
    try:
        if choice == "custom":
            date_range = DateRange.of(
                start=_parse_date(params.get("start")), end=_parse_date(params.get("end")), today=today
            )
        else:
            choice = choice if choice in RANGES else DEFAULT_RANGE
            date_range = DateRange.of(start=None, end=None, today=today, default_days=RANGES[choice])
    except (ValueError, InvalidDateRange):
        error = InvalidDateRange.default_message
        choice = DEFAULT_RANGE
        date_range = DateRange.of(start=None, end=None, today=today, default_days=RANGES[choice])
    chosen = [bot for bot in bots if bot.public_id == params.get("bot")]
    bot_ids = [bot.pk for bot in (chosen or bots)]
    filters = Filters(
        range=choice,
        start=date_range.start,
        end=date_range.end,
        bot=chosen[0].public_id if chosen else "",
        error=error,
    )
    return filters, date_range, bot_ids


def _change(now: float, before: float, *, points: bool = False) -> str:
    """The change against the previous period: relative for counts, in points for rates."""
    if points:
        return f"{now - before:+.1f} pts"
    if before == 0:
        return "new" if now else ""
    return f"{(now - before) / before * 100:+.0f} %"


def _trend(now: float | None, before: float | None, *, up_is_good: bool) -> str:
    if now is None or before is None or now == before:
        return ""
    return "good" if (now > before) == up_is_good else "bad"


def _answered_rate(figures: Figures) -> float | None:
    """Answers that were neither a failure nor the fallback reply, in % of all answers."""
    if not figures.answers:
        return None
    return (figures.answers - figures.failed - figures.answers_fallback) / figures.answers * 100


def _satisfaction(figures: Figures) -> float | None:
    rated = figures.thumbs_up + figures.thumbs_down
    return figures.thumbs_up / rated * 100 if rated else None


def _ms(value: int | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value} ms"


def _headlines(current: Figures, previous: Figures) -> list[Headline]:
    headlines = []
    for label, now, before in (
        ("Conversations", current.conversations, previous.conversations),
        ("Messages", current.messages, previous.messages),
    ):
        headlines.append(
            Headline(label, f"{now:,}", _change(now, before), _trend(now, before, up_is_good=True))
        )
    for label, rate, hint in (
        ("Answered", _answered_rate, "answers that were neither a failure nor the fallback reply"),
        ("Satisfaction", _satisfaction, "thumbs up among rated answers"),
    ):
        now, before = rate(current), rate(previous)
        headlines.append(
            Headline(
                label,
                "–" if now is None else f"{now:.0f} %",
                "" if now is None or before is None else _change(now, before, points=True),
                _trend(now, before, up_is_good=True),
                hint,
            )
        )
    now, before = current.latency_p95_ms, previous.latency_p95_ms
    headlines.append(
        Headline(
            "Latency p95",
            _ms(now),
            "" if now is None or before is None else _change(now, before),
            _trend(now, before, up_is_good=False),
            f"p50 {_ms(current.latency_p50_ms)}, first token p95 {_ms(current.ttft_p95_ms)}",
        )
    )
    headlines.append(
        Headline(
            "Cost",
            f"${current.cost_usd:,.2f}",
            _change(float(current.cost_usd), float(previous.cost_usd)),
            _trend(current.cost_usd, previous.cost_usd, up_is_good=False),
            f"{current.prompt_tokens:,} tokens in, {current.completion_tokens:,} out",
        )
    )
    return headlines


def _charts(days: list, total: Figures) -> list[Chart]:
    labels = [entry.day.isoformat() for entry in days]

    def series(name: str) -> list:
        return [getattr(entry.figures, name) for entry in days]

    models = sorted(total.by_model.items(), key=lambda item: item[1].cost_usd, reverse=True)
    return [
        Chart("volume", "Conversations and messages", "line", labels, [
            Dataset("Conversations", series("conversations")),
            Dataset("Questions", series("questions")),
            Dataset("Answers", series("answers")),
        ], description="Conversations started, visitors' questions and the bot's answers per day."),
        Chart("resolution", "How questions were answered", "bar", labels, [
            Dataset("FAQ", series("answers_faq")),
            Dataset("Knowledge", series("answers_knowledge")),
            Dataset("Model without sources", series("answers_model")),
            Dataset("Offline", series("answers_offline")),
            Dataset("Fallback reply", series("answers_fallback")),
            Dataset("Failed", series("failed")),
        ], stacked=True, description="Answers per day by what answered them."),
        Chart("feedback", "Feedback", "bar", labels, [
            Dataset("Thumbs up", series("thumbs_up")),
            Dataset("Thumbs down", series("thumbs_down")),
        ], description="Visitors' ratings of the day's answers."),
        Chart("speed", "Speed", "line", labels, [
            Dataset("First token p50", series("ttft_p50_ms")),
            Dataset("First token p95", series("ttft_p95_ms")),
            Dataset("Latency p50", series("latency_p50_ms")),
            Dataset("Latency p95", series("latency_p95_ms")),
        ], unit="ms", description="Time to the first token and to the whole answer, in milliseconds."),
        Chart("hours", "Busiest hours (UTC)", "bar", [f"{hour:02d}:00" for hour in range(24)], [
            Dataset("Questions", total.questions_by_hour),
        ], description="Visitors' messages by hour of the day over the whole range."),
        Chart("cost", "Cost by model", "bar", [model for model, _ in models], [
            Dataset("Cost (USD)", [float(usage.cost_usd) for _, usage in models]),
            Dataset("Answers", [usage.answers for _, usage in models]),
        ], description="Estimated cost and answers per model over the whole range."),
    ]  # fmt: skip


def dashboard_section(*, request: HttpRequest, organization: Organization | None) -> dict[str, Any] | None:
    """The section for one organization; with ``organization=None``, the whole deployment for staff
    operators (no bot filter: bots belong to many organizations), and nothing for anyone else."""
    if organization is None and not request.user.is_staff:
        return None
    organization_id = organization.pk if organization is not None else None
    bots = list(Bot.objects.filter(organization=organization).order_by("name", "pk")) if organization else []
    filters, date_range, bot_ids = _filters(request, bots)
    if organization is None:
        bot_ids = None
    report = analytics_report(organization_id=organization_id, date_range=date_range, bot_ids=bot_ids)
    summary, days = report.summary, report.days
    charts = _charts(days, summary.current)
    return {
        "template": "analytics/admin/dashboard_section.html",
        "filters": filters,
        "bots": bots,
        "summary": summary,
        "headlines": _headlines(summary.current, summary.previous),
        "charts": charts,
        "chart_data": [asdict(chart) for chart in charts],
        "has_data": bool(summary.current.messages or summary.current.conversations),
        "deployment": organization is None,
    }
