"""Webhooks: an organization's endpoints, the events that happened, and each event's delivery to each
endpoint with every attempt (docs/webhooks.md).

An event is stored once with its payload; a delivery is a row per (endpoint, event) that a Celery task
claims with a conditional UPDATE, so a killed worker loses nothing (the beat job re-queues what is overdue)
and two workers never send the same attempt.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone

from config import crypto

SECRET_PREFIX = "whsec_"  # noqa: S105 - the public prefix of generated secrets


def new_event_id() -> str:
    """The event's public id: the receiver's idempotency key (the same on every retry and redelivery)."""
    return "evt_" + secrets.token_urlsafe(18)


def new_signing_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class EventType(models.TextChoices):
    CONVERSATION_STARTED = "conversation.started", "A conversation started"
    MESSAGE_CREATED = "message.created", "A message was stored (visitor, bot or operator)"
    FEEDBACK_CREATED = "feedback.created", "A visitor rated an answer"
    HANDOFF_REQUESTED = "handoff.requested", "A conversation waits for a human"
    HANDOFF_TAKEN = "handoff.taken", "An operator took a conversation"
    LEAD_CREATED = "lead.created", "A visitor left their contact details"
    SOURCE_READY = "source.ready", "A knowledge source is ready"
    SOURCE_FAILED = "source.failed", "A knowledge source failed"


# Sent by "Send test event" only, to the one endpoint asked for, whatever it subscribes to.
TEST_EVENT_TYPE = "webhook.test"
EVENT_TYPE_CHOICES = [*EventType.choices, (TEST_EVENT_TYPE, "Test event")]


def default_events() -> list[str]:
    return list(EventType.values)


class WebhookEndpoint(models.Model):
    """A URL of the customer's that receives signed events of the types it subscribes to."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(
        "URL", max_length=2000, help_text="Where Parlor POSTs events, e.g. https://example.com/hooks/parlor."
    )
    description = models.CharField(max_length=200, blank=True)
    events = ArrayField(
        models.CharField(max_length=40, choices=EventType.choices),
        default=default_events,
        help_text="The event types sent to this endpoint.",
    )
    enabled = models.BooleanField(
        default=True, help_text="Disabled endpoints receive nothing (Parlor disables one that keeps failing)."
    )
    # The signing secret, encrypted at rest (config/crypto.py). After a rotation the previous secret keeps
    # signing too (a second v1 signature) until ``previous_secret_expires_at``.
    secret_encrypted = models.TextField(editable=False)
    previous_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=300, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook endpoint"
        indexes = [models.Index(fields=["organization", "enabled"], name="webhookendpoint_org_enabled")]

    def __str__(self) -> str:
        return self.description or self.url

    @property
    def secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret)

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        """The secrets that sign a delivery now: the current one, then the previous one while it lasts."""
        now = now or timezone.now()
        found = [self.secret]
        if (
            self.previous_secret_encrypted
            and self.previous_secret_expires_at
            and self.previous_secret_expires_at > now
        ):
            found.append(crypto.decrypt(self.previous_secret_encrypted))
        return found


class WebhookEvent(models.Model):
    """Something that happened in an organization, with the payload every endpoint receives for it."""

    # A visitor's erasure (chatbots/privacy.py) finds the events that carry their messages by this field.
    visitor_fields = ("visitor_id",)

    id = models.CharField(primary_key=True, max_length=40, default=new_event_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=40, choices=EVENT_TYPE_CHOICES)
    data = models.JSONField(default=dict)
    visitor_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "webhook event"
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="webhookevent_org_recent"),
            models.Index(
                fields=["organization", "visitor_id"],
                name="webhookevent_visitor",
                condition=~Q(visitor_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed (gave up)"


class WebhookDelivery(models.Model):
    """One event for one endpoint: pending until an attempt gets a 2xx or the retry window closes."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempt_count = models.PositiveIntegerField("attempts", default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    retry_until = models.DateTimeField()
    # Held by the worker sending an attempt (a lease): another worker does not claim it until it passes.
    claimed_until = models.DateTimeField(null=True, blank=True)
    # When a task for this delivery was last put on the queue (or will be due there); the beat job
    # re-queues pending deliveries whose task has not run for a while (a killed worker).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhookdelivery_once_per_endpoint")
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="webhookdelivery_org_recent"),
            models.Index(
                fields=["next_attempt_at"], name="webhookdelivery_pending", condition=Q(status="pending")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id}"


class WebhookAttempt(models.Model):
    """One POST of a delivery: what the endpoint answered (or why it could not be reached), and how fast."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    succeeded = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["delivery", "number"]
        verbose_name = "webhook attempt"
        indexes = [models.Index(fields=["delivery", "number"], name="webhookattempt_delivery")]

    def __str__(self) -> str:
        outcome = self.status_code or self.error or "-"
        return f"attempt {self.number}: {outcome}"
