"""Writes of webhooks: events recorded by the apps that own what happened, endpoints and their secrets,
redelivery and test events, and the beat jobs (re-queue what is overdue, purge the old log).

``webhook_event`` is the one entry point for the other apps: knowledge and chatbots call it in the
transaction that changes their data, with a payload they shaped themselves; webhooks knows none of their
models. The deliveries are rows written in the same transaction and their tasks are queued once it
commits, so an event is sent exactly when its change is real and never lost with a worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Organization
from config import log_context, outbound
from webhooks.exceptions import EndpointUrlRefused, InvalidEndpoint
from webhooks.models import (
    TEST_EVENT_TYPE,
    DeliveryStatus,
    EventType,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    new_signing_secret,
)

# Fields a customer may set through the admin or the API (the secret has its own services).
ENDPOINT_EDITABLE_FIELDS = ("url", "description", "events", "enabled")


# --- events -------------------------------------------------------------------------------------------
def _json_safe(data: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as it will be sent (UUIDs, dates and decimals as strings), stored as such."""
    return json.loads(json.dumps(dict(data), cls=DjangoJSONEncoder))


def webhook_event(
    *, organization_id: int, event_type: str, data: Mapping[str, Any], visitor_id: str = ""
) -> WebhookEvent | None:
    """Record that ``event_type`` happened in an organization and queue its delivery to each enabled
    endpoint subscribed to it, once the caller's transaction commits (nothing is sent for a rolled-back
    change). ``data`` is the payload's ``data`` object; ``visitor_id`` names the visitor it concerns, so
    their erasure removes it too. Returns the event, or None when no endpoint wants it (nothing stored)."""
    if event_type not in EventType.values:
        raise ValueError(f"Unknown webhook event type {event_type!r}.")
    endpoint_ids = list(
        WebhookEndpoint.objects.filter(
            organization_id=organization_id, enabled=True, events__contains=[event_type]
        ).values_list("pk", flat=True)
    )
    if not endpoint_ids:
        return None
    return _event_create(
        organization_id=organization_id, event_type=event_type, data=data, visitor_id=visitor_id,
        endpoint_ids=endpoint_ids,
    )  # fmt: skip


def _event_create(
    *,
    organization_id: int,
    event_type: str,
    data: Mapping[str, Any],
    visitor_id: str,
    endpoint_ids: list[int],
) -> WebhookEvent:
    now = timezone.now()
    with transaction.atomic():
        event = WebhookEvent.objects.create(
            organization_id=organization_id, type=event_type, data=_json_safe(data),
            visitor_id=visitor_id[:64], created_at=now,
        )  # fmt: skip
        deliveries = WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(
                    organization_id=organization_id,
                    endpoint_id=endpoint_id,
                    event=event,
                    next_attempt_at=now,
                    retry_until=now + retry_window(),
                    enqueued_at=now,
                    created_at=now,
                )
                for endpoint_id in endpoint_ids
            ]
        )
        deliveries_enqueue([delivery.pk for delivery in deliveries])
    return event


def retry_window() -> timedelta:
    return timedelta(hours=settings.WEBHOOK_RETRY_HOURS)


def deliveries_enqueue(delivery_ids: Iterable[int], *, countdown: float = 0) -> None:
    """Queue a delivery task per id once the current transaction commits."""
    from webhooks.tasks import webhook_deliver_task

    ids = list(delivery_ids)

    def send() -> None:
        # Without the conversation's and bot's ids in the task's headers (config/log_context.py): a retry
        # waits in Redis for minutes, and a visitor's erasure must find nothing of theirs there.
        with log_context.bound(conversation_id=None, bot_id=None):
            for delivery_id in ids:
                webhook_deliver_task.apply_async((delivery_id,), countdown=countdown or None)

    if ids:
        transaction.on_commit(send)


# --- endpoints ------------------------------------------------------------------------------------------
def endpoint_url_problem(url: str) -> str | None:
    """Why Parlor will not send to ``url`` (the outbound guard's SSRF rule), or None. The deployment lets
    private networks through only by listing them in OUTBOUND_ALLOWED_NETWORKS."""
    try:
        outbound.check_url(url)
    except outbound.OutboundRefused as exc:
        return f"This address is not allowed for webhooks: {exc}"
    return None


def _clean_events(events: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(str(event) for event in events))
    unknown = [event for event in chosen if event not in EventType.values]
    if unknown:
        raise InvalidEndpoint(f"Unknown event types: {', '.join(unknown)}.")
    if not chosen:
        raise InvalidEndpoint("Choose at least one event type.")
    return [event for event in EventType.values if event in chosen]  # in the documented order


def webhook_endpoint_validate(endpoint: WebhookEndpoint) -> None:
    """The rules of an endpoint: an allowed address, known events, a limit per organization."""
    if problem := endpoint_url_problem(endpoint.url):
        raise EndpointUrlRefused(problem)
    endpoint.events = _clean_events(endpoint.events or [])
    if endpoint.pk is None:
        count = WebhookEndpoint.objects.filter(organization_id=endpoint.organization_id).count()
        if count >= settings.WEBHOOK_MAX_ENDPOINTS:
            raise InvalidEndpoint(
                f"An organization can have at most {settings.WEBHOOK_MAX_ENDPOINTS} webhook endpoints."
            )


def webhook_endpoint_save(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Validate and store an endpoint (new or changed): a new one gets its signing secret; enabling a
    disabled one starts it afresh (no failures counted)."""
    webhook_endpoint_validate(endpoint)
    if not endpoint.secret_encrypted:
        endpoint.set_secret(new_signing_secret())
    if endpoint.enabled:
        endpoint.consecutive_failures = 0
        endpoint.disabled_at = None
        endpoint.disabled_reason = ""
    endpoint.save()
    return endpoint


def webhook_endpoint_create(
    *, organization: Organization, url: str, events: Iterable[str] | None = None, description: str = "",
    enabled: bool = True,
) -> WebhookEndpoint:  # fmt: skip
    """A new endpoint with a fresh signing secret (all event types unless ``events`` says otherwise)."""
    endpoint = WebhookEndpoint(
        organization=organization, url=url, description=description, enabled=enabled,
        events=list(events) if events is not None else list(EventType.values),
    )  # fmt: skip
    return webhook_endpoint_save(endpoint=endpoint)


def webhook_endpoint_update(*, endpoint: WebhookEndpoint, data: Mapping[str, Any]) -> WebhookEndpoint:
    unknown = set(data) - set(ENDPOINT_EDITABLE_FIELDS)
    if unknown:
        raise InvalidEndpoint(f"Unknown or read-only endpoint fields: {', '.join(sorted(unknown))}.")
    for field, value in data.items():
        setattr(endpoint, field, value)
    return webhook_endpoint_save(endpoint=endpoint)


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries and their attempts (pending ones are never sent)."""
    endpoint.delete()


@transaction.atomic
def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, previous_valid_hours: float | None = None
) -> str:
    """Give the endpoint a new signing secret and return it. The old one keeps signing beside it for
    ``previous_valid_hours`` (WEBHOOK_SECRET_ROTATION_HOURS by default; 0 ends it now), so a receiver can
    switch to the new secret without refusing a single delivery."""
    hours = settings.WEBHOOK_SECRET_ROTATION_HOURS if previous_valid_hours is None else previous_valid_hours
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    secret = new_signing_secret()
    if hours > 0:
        locked.previous_secret_encrypted = locked.secret_encrypted
        locked.previous_secret_expires_at = timezone.now() + timedelta(hours=hours)
    else:
        locked.previous_secret_encrypted = ""
        locked.previous_secret_expires_at = None
    locked.set_secret(secret)
    locked.save(
        update_fields=[
            "secret_encrypted",
            "previous_secret_encrypted",
            "previous_secret_expires_at",
            "updated_at",
        ]
    )
    endpoint.refresh_from_db()
    return secret


def webhook_endpoint_send_test(*, endpoint: WebhookEndpoint) -> WebhookEvent:
    """Send a ``webhook.test`` event to this endpoint alone (also when it is disabled or does not
    subscribe to anything in particular): the way to check a receiver and its signature check."""
    with transaction.atomic():
        return _event_create(
            organization_id=endpoint.organization_id, event_type=TEST_EVENT_TYPE,
            data={"endpoint": {"id": endpoint.pk, "url": endpoint.url}, "message": "A test event from Parlor."},
            visitor_id="", endpoint_ids=[endpoint.pk],
        )  # fmt: skip


# --- deliveries -----------------------------------------------------------------------------------------
def webhook_deliveries_redeliver(*, deliveries: Iterable[WebhookDelivery]) -> int:
    """Send these deliveries again now, with the same event id and body (a receiver that already has the
    event recognises it). A delivery being sent right now is left to finish. Returns how many were queued."""
    now = timezone.now()
    ids = [delivery.pk for delivery in deliveries]
    with transaction.atomic():
        queued = list(
            WebhookDelivery.objects.filter(pk__in=ids)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        WebhookDelivery.objects.filter(pk__in=queued).update(
            status=DeliveryStatus.PENDING, next_attempt_at=now, retry_until=now + retry_window(),
            enqueued_at=now, claimed_until=None,
        )  # fmt: skip
        deliveries_enqueue(queued)
    return len(queued)


def webhook_deliveries_resume(*, limit: int = 1000) -> int:
    """Beat job: queue the pending deliveries that are due and whose task is not (any longer) on its way:
    retries too far off to wait in the queue, and tasks lost with a killed worker. The claim makes a
    task that turns up twice harmless."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        WebhookDelivery.objects.filter(pk__in=ids).update(enqueued_at=now)
        deliveries_enqueue(ids)
    return len(ids)


def webhook_log_purge(*, now: Any = None) -> int:
    """Beat job: delete events (with their deliveries and attempts) older than WEBHOOK_LOG_RETENTION_DAYS
    that have nothing pending any more. Returns how many events were deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.WEBHOOK_LOG_RETENTION_DAYS)
    old = WebhookEvent.objects.filter(created_at__lt=cutoff).exclude(
        deliveries__status=DeliveryStatus.PENDING
    )
    ids = list(old.values_list("pk", flat=True)[:5000])
    deleted = WebhookEvent.objects.filter(pk__in=ids).delete()[1].get(WebhookEvent._meta.label, 0)
    return deleted
