"""Daily aggregates of what the bots did, rebuilt from the messages chatbots stored.

One row per organization, bot, channel and UTC day. Rows are derived data: ``services.daily_rollup``
replaces a day's rows from the messages, so they can always be thrown away and rebuilt.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models

from analytics import histograms


def hours_empty() -> list[int]:
    return [0] * 24


class DailyStat(models.Model):
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey("chatbots.Bot", on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=10)
    day = models.DateField()

    # Conversations started this day, and the distinct visitors who wrote this day (per row: a visitor
    # counted on two days or two channels is counted twice when rows are added up).
    conversations = models.PositiveIntegerField(default=0)
    visitors = models.PositiveIntegerField(default=0)
    questions = models.PositiveIntegerField(default=0)  # the visitors' messages
    refused = models.PositiveIntegerField(default=0)  # ... of which refused (rate limit, size, busy)
    answers = models.PositiveIntegerField(default=0)  # the bot's messages, by what answered:
    answers_faq = models.PositiveIntegerField(default=0)
    answers_knowledge = models.PositiveIntegerField(default=0)  # a model, with sources
    answers_model = models.PositiveIntegerField(default=0)  # a model, without sources
    answers_fallback = models.PositiveIntegerField(default=0)  # the bot's fixed "I don't know" reply
    answers_offline = models.PositiveIntegerField(default=0)  # the offline extractive provider
    failed = models.PositiveIntegerField(default=0)  # no answer at all (the visitor got an apology)
    incomplete = models.PositiveIntegerField(default=0)  # interrupted; counted in its kind above too
    answers_cached = models.PositiveIntegerField(default=0)  # from the answer cache; in its kind above too
    errors = models.JSONField(default=dict, blank=True)  # error_code -> messages (both roles)
    thumbs_up = models.PositiveIntegerField(default=0)
    thumbs_down = models.PositiveIntegerField(default=0)
    ttft_histogram = ArrayField(
        models.PositiveIntegerField(), size=histograms.BUCKETS, default=histograms.empty
    )
    latency_histogram = ArrayField(
        models.PositiveIntegerField(), size=histograms.BUCKETS, default=histograms.empty
    )
    # Visitors' messages per UTC hour of the day (24 counts): the busiest hours.
    questions_by_hour = ArrayField(models.PositiveIntegerField(), size=24, default=hours_empty)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    # model -> {"answers", "prompt_tokens", "completion_tokens", "cost_usd" (a decimal string)}
    by_model = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["day", "bot_id", "channel"]
        constraints = [
            models.UniqueConstraint(fields=["bot", "channel", "day"], name="dailystat_bot_channel_day"),
        ]
        indexes = [models.Index(fields=["organization", "day"], name="dailystat_org_day")]

    def __str__(self) -> str:
        return f"{self.day} bot {self.bot_id} {self.channel}"
