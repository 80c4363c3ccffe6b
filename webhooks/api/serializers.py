"""Webhooks over the API: endpoints (the secret is shown when created or rotated) and the delivery log."""

from __future__ import annotations

from rest_framework import serializers

from accounts.api.inputs import InputModelSerializer, InputSerializer
from webhooks.models import EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint


class WebhookEndpointSerializer(InputModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices), required=False, allow_empty=False,
        help_text="Event types sent to this endpoint (default: all of them).",
    )  # fmt: skip
    # A plain CharField: the model's URLField validator already checks it (once), the SSRF guard after.
    url = serializers.CharField(
        max_length=2000, help_text="Where Parlor POSTs events (https:// recommended)."
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id", "url", "description", "events", "enabled", "consecutive_failures", "disabled_at",
            "disabled_reason", "previous_secret_expires_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "id", "consecutive_failures", "disabled_at", "disabled_reason", "previous_secret_expires_at",
            "created_at", "updated_at",
        ]  # fmt: skip


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    """An endpoint with its signing secret: the answer to creating it or rotating its secret."""

    secret = serializers.SerializerMethodField(
        help_text="The signing secret (whsec_…); keep it on your server."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]

    def get_secret(self, endpoint: WebhookEndpoint) -> str:
        return endpoint.secret


class SecretRotationSerializer(InputSerializer):
    previous_valid_hours = serializers.FloatField(
        required=False, min_value=0, max_value=24 * 7,
        help_text="How long the previous secret keeps signing beside the new one (default: the deployment's "
        "WEBHOOK_SECRET_ROTATION_HOURS, 24); 0 retires it at once.",
    )  # fmt: skip


class TestEventSerializer(serializers.Serializer):
    event_id = serializers.CharField(help_text="The test event's id (its Parlor-Event-Id).")


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = [
            "number",
            "created_at",
            "succeeded",
            "status_code",
            "latency_ms",
            "error",
            "response_excerpt",
        ]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="event.id")
    event_type = serializers.CharField(source="event.type")
    attempts = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "event_id", "event_type", "status", "attempt_count", "last_status_code", "last_error",
            "next_attempt_at", "delivered_at", "created_at", "attempts",
        ]  # fmt: skip


class RedeliverySerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="1 when queued; 0 when an attempt is being sent right now.")
