"""One attempt of one delivery: claim it, POST the signed event, log the attempt, then succeed, schedule
the retry, give up, or disable an endpoint that keeps failing (and tell the organization's owners).

The claim is a conditional UPDATE that takes a lease (``claimed_until``): two tasks for one delivery (a
redelivered message, the beat job's re-queue) never send the same attempt twice, and a worker killed while
sending frees the delivery when its lease passes. Receivers still see an event more than once now and
then (a response lost on the way back): its id is the idempotency key (docs/webhooks.md).
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from accounts.emails import email_message, email_subject
from accounts.models import Membership, Role
from config import outbound
from webhooks import signing
from webhooks.models import (
    TEST_EVENT_TYPE,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from webhooks.services import deliveries_enqueue

logger = logging.getLogger(__name__)

EXCERPT_BYTES = 1024
USER_AGENT = "Parlor-Webhooks/1"


@dataclass(frozen=True)
class AttemptOutcome:
    delivery_id: int
    number: int
    succeeded: bool
    status_code: int | None
    error: str
    gave_up: bool
    next_attempt_at: datetime | None


def event_body(event: WebhookEvent) -> bytes:
    """The JSON body of every delivery of ``event``: identical on each retry (same id, same bytes)."""
    payload = {
        "id": event.id,
        "type": event.type,
        "created": event.created_at.isoformat().replace("+00:00", "Z"),
        "organization": {"id": event.organization_id, "slug": event.organization.slug},
        "data": event.data,
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def retry_delay(attempt_number: int) -> float:
    """Seconds before the attempt after failed attempt ``attempt_number``: doubling from
    WEBHOOK_RETRY_BASE_SECONDS up to WEBHOOK_RETRY_MAX_SECONDS, with up to 20 % jitter so that the
    deliveries of an endpoint that was down do not all come back at once."""
    base = settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(0, attempt_number - 1)
    return min(base, settings.WEBHOOK_RETRY_MAX_SECONDS) * random.uniform(1.0, 1.2)


@functools.cache
def _client() -> httpx.Client:
    """One guarded client per process (kept-alive connections to receivers). Every connection goes
    through the outbound guard: private addresses are refused unless OUTBOUND_ALLOWED_NETWORKS lists them,
    and a redirect is answered as a failure, never followed."""
    timeout = httpx.Timeout(settings.WEBHOOK_TIMEOUT_SECONDS)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    return outbound.client(refuse_redirects=False, timeout=timeout, limits=limits)


def _claim(delivery_id: int, now: datetime) -> bool:
    lease = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 30)
    return bool(
        WebhookDelivery.objects.filter(
            pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=lease, attempt_count=F("attempt_count") + 1)
    )


def _post(endpoint: WebhookEndpoint, event: WebhookEvent, number: int) -> tuple[int | None, str, str]:
    """POST the event; (status code or None, response excerpt, error)."""
    body = event_body(event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.EVENT_ID_HEADER: event.id,
        signing.EVENT_TYPE_HEADER: event.type,
        signing.ATTEMPT_HEADER: str(number),
        signing.SIGNATURE_HEADER: signing.signature_header(
            secrets=endpoint.signing_secrets(), timestamp=int(time.time()), body=body
        ),
    }
    try:
        with _client().stream("POST", endpoint.url, content=body, headers=headers) as response:
            excerpt = b""
            for chunk in response.iter_bytes():
                excerpt += chunk
                if len(excerpt) >= EXCERPT_BYTES:
                    break
            return response.status_code, excerpt[:EXCERPT_BYTES].decode("utf-8", "replace"), ""
    except outbound.OutboundRefused as exc:
        return None, "", str(exc)
    except httpx.TimeoutException:
        return None, "", f"No answer within {settings.WEBHOOK_TIMEOUT_SECONDS:g} seconds."
    except httpx.HTTPError as exc:
        return None, "", f"Could not connect: {type(exc).__name__}: {exc}"[:500]


def webhook_delivery_attempt(*, delivery_id: int) -> AttemptOutcome | None:
    """Send one attempt of a pending, due delivery; None when there is nothing to do (delivered, given up,
    not due, or another worker holds it)."""
    now = timezone.now()
    if not _claim(delivery_id, now):
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint", "event__organization").get(pk=delivery_id)
    endpoint, event, number = delivery.endpoint, delivery.event, delivery.attempt_count
    started = time.monotonic()
    if not endpoint.enabled and event.type != TEST_EVENT_TYPE:
        status_code, excerpt, error = None, "", "The endpoint is disabled."
        final = True
    else:
        status_code, excerpt, error = _post(endpoint, event, number)
        final = False
    latency_ms = int((time.monotonic() - started) * 1000)
    succeeded = status_code is not None and 200 <= status_code < 300
    if status_code is not None and not succeeded:
        error = f"HTTP {status_code}"
    return _record(
        delivery=delivery, number=number, succeeded=succeeded, status_code=status_code, excerpt=excerpt,
        error=error, latency_ms=latency_ms, final=final,
    )  # fmt: skip


@transaction.atomic
def _record(
    *, delivery: WebhookDelivery, number: int, succeeded: bool, status_code: int | None, excerpt: str,
    error: str, latency_ms: int, final: bool,
) -> AttemptOutcome:  # fmt: skip
    now = timezone.now()
    WebhookAttempt.objects.create(
        organization_id=delivery.organization_id, delivery_id=delivery.pk, number=number, succeeded=succeeded,
        status_code=status_code, latency_ms=latency_ms, response_excerpt=excerpt, error=error[:500], created_at=now,
    )  # fmt: skip
    fields = {"claimed_until": None, "last_status_code": status_code, "last_error": error[:500]}
    next_at = None
    gave_up = False
    if succeeded:
        fields.update(status=DeliveryStatus.SUCCEEDED, delivered_at=now)
        # Only a write when there is something to reset: a busy healthy endpoint's row is not contended.
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, consecutive_failures__gt=0).update(
            consecutive_failures=0
        )
    elif final or now >= delivery.retry_until:
        fields.update(status=DeliveryStatus.FAILED)
        gave_up = True
    else:
        delay = retry_delay(number)
        next_at = now + timedelta(seconds=delay)
        queued = delay <= settings.WEBHOOK_QUEUE_RETRY_MAX_SECONDS
        # A near retry waits in the queue; a far one is picked up by the beat job when it is due.
        fields.update(next_attempt_at=next_at, enqueued_at=next_at if queued else None)
        if queued:
            deliveries_enqueue([delivery.pk], countdown=delay)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    if not succeeded and not final:
        _count_failure(delivery.endpoint_id)
    return AttemptOutcome(
        delivery_id=delivery.pk, number=number, succeeded=succeeded, status_code=status_code, error=error,
        gave_up=gave_up, next_attempt_at=next_at,
    )  # fmt: skip


def _count_failure(endpoint_id: int) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint_id).update(consecutive_failures=F("consecutive_failures") + 1)
    limit = settings.WEBHOOK_DISABLE_AFTER_FAILURES
    reason = f"Disabled after {limit} failed attempts in a row."
    disabled = WebhookEndpoint.objects.filter(
        pk=endpoint_id, enabled=True, consecutive_failures__gte=limit
    ).update(enabled=False, disabled_at=timezone.now(), disabled_reason=reason)
    if disabled:  # exactly once: the conditional UPDATE above flips it for one worker only
        logger.warning("webhook endpoint %s disabled after %s failures", endpoint_id, limit)
        transaction.on_commit(lambda: endpoint_disabled_notify(endpoint_id=endpoint_id))


def endpoint_disabled_notify(*, endpoint_id: int) -> int:
    """E-mail the organization's owners that an endpoint was disabled; returns how many were told."""
    endpoint = WebhookEndpoint.objects.select_related("organization").filter(pk=endpoint_id).first()
    if endpoint is None:
        return 0
    owners = list(
        Membership.objects.filter(organization_id=endpoint.organization_id, role=Role.OWNER)
        .select_related("user")
        .values_list("user__email", flat=True)
    )
    if not owners:
        return 0
    link = settings.SITE_URL + reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk])
    last = (
        WebhookDelivery.objects.filter(endpoint_id=endpoint.pk).exclude(last_error="").order_by("-pk").first()
    )
    text = (
        f"Parlor stopped sending events to a webhook endpoint of {endpoint.organization.name}:\n\n"
        f"  {endpoint.url}\n\n"
        f"{endpoint.disabled_reason} The last error was: {last.last_error if last else 'unknown'}.\n\n"
        "Events that happen while it is disabled are not sent to it. Fix the receiver, then enable the "
        "endpoint again (and redeliver the failed deliveries you need) here:\n\n"
        f"  {link}\n"
    )
    email_message(subject=email_subject("A webhook endpoint was disabled"), text=text, to=owners).send()
    return len(owners)
