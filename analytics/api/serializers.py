"""Shapes of the analytics API: the query (date range, bots) and the figures of a range or a day."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analytics.selectors import Figures


class AnalyticsQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First day (UTC), default: 29 days before end.")
    end = serializers.DateField(required=False, help_text="Last day (UTC), included; default: today.")
    bot = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        max_length=100,
        help_text="A bot's public id; repeat for several. Default: every bot the caller may see.",
    )


class ModelUsageSerializer(serializers.Serializer):
    model = serializers.CharField()
    answers = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=14, decimal_places=6)


class FiguresSerializer(serializers.Serializer):
    conversations = serializers.IntegerField(help_text="Conversations started.")
    visitors = serializers.IntegerField(help_text="Unique visitors per day, added up over the days.")
    messages = serializers.IntegerField()
    questions = serializers.IntegerField(help_text="Visitors' messages.")
    refused = serializers.IntegerField(help_text="Visitors' messages refused (rate limit, size, busy).")
    answers = serializers.IntegerField(help_text="The bot's messages, of these kinds:")
    answers_faq = serializers.IntegerField()
    answers_knowledge = serializers.IntegerField(help_text="A model answered with sources.")
    answers_model = serializers.IntegerField(help_text="A model answered without sources.")
    answers_fallback = serializers.IntegerField(help_text="The bot's fixed fallback reply.")
    answers_offline = serializers.IntegerField(help_text="The offline extractive provider.")
    failed = serializers.IntegerField(help_text="No answer: the visitor got an apology.")
    incomplete = serializers.IntegerField(help_text="Interrupted answers (also counted in their kind).")
    thumbs_up = serializers.IntegerField()
    thumbs_down = serializers.IntegerField()
    ttft_p50_ms = serializers.IntegerField(allow_null=True)
    ttft_p95_ms = serializers.IntegerField(allow_null=True)
    latency_p50_ms = serializers.IntegerField(allow_null=True)
    latency_p95_ms = serializers.IntegerField(allow_null=True)
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=14, decimal_places=6)
    questions_by_hour = serializers.ListField(
        child=serializers.IntegerField(), help_text="Visitors' messages per UTC hour, 00 to 23."
    )
    errors = serializers.DictField(child=serializers.IntegerField(), help_text="Messages per error code.")
    by_model = serializers.SerializerMethodField()

    @extend_schema_field(ModelUsageSerializer(many=True))
    def get_by_model(self, figures: Figures) -> list[dict]:
        return [
            ModelUsageSerializer({"model": model, **vars(usage)}).data
            for model, usage in sorted(figures.by_model.items())
        ]


class DayFiguresSerializer(serializers.Serializer):
    day = serializers.DateField()
    figures = FiguresSerializer()


class SummarySerializer(serializers.Serializer):
    start = serializers.DateField(source="range.start")
    end = serializers.DateField(source="range.end")
    previous_start = serializers.DateField(source="previous_range.start")
    previous_end = serializers.DateField(source="previous_range.end")
    current = FiguresSerializer()
    previous = FiguresSerializer(help_text="The period of the same length just before, to compare with.")


class SeriesSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    days = DayFiguresSerializer(many=True)
