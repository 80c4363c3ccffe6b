"""Bot settings over the API. Provider keys are write-only: responses say only whether one is stored."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.api.inputs import InputModelSerializer
from chatbots.models import Bot
from chatbots.services import BOT_EDITABLE_FIELDS


class BotSerializer(InputModelSerializer):
    api_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=True, max_length=500,
        help_text='Provider API key; stored encrypted and never returned. "" removes it; omit to keep it.',
    )  # fmt: skip
    fallback_api_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=True, max_length=500,
        help_text="API key for the fallback provider (same rules as api_key).",
    )  # fmt: skip
    has_api_key = serializers.BooleanField(read_only=True)
    has_fallback_api_key = serializers.BooleanField(read_only=True)
    suggested_questions = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
    allowed_origins = serializers.ListField(child=serializers.CharField(max_length=300), required=False)
    embed_snippet = serializers.SerializerMethodField()

    class Meta:
        model = Bot
        fields = [
            "public_id", *BOT_EDITABLE_FIELDS, "api_key", "fallback_api_key", "has_api_key",
            "has_fallback_api_key", "embed_snippet", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["public_id", "created_at", "updated_at"]

    def get_embed_snippet(self, bot: Bot) -> str:
        from chatbots.widget_views import embed_snippet

        return embed_snippet(bot)

    def split(self) -> tuple[dict[str, Any], str | None, str | None]:
        """(settings, api_key, fallback_api_key) from validated data, in the services' terms."""
        data = dict(self.validated_data)
        return data, data.pop("api_key", None), data.pop("fallback_api_key", None)


class ConnectionReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    provider = serializers.CharField()
    model = serializers.CharField()
    message = serializers.CharField()
    latency_ms = serializers.IntegerField(allow_null=True)
