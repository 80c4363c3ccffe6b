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
from django.db import connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.emails import email_message, email_subject
from accounts.models import Membership, Role
from config import outbound
from webhooks import signing
from webhooks.models import (
    TEST_EVENT_TYPE,
    DeliveryStatus,
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


def event_body(event: WebhookEvent, organization_slug: str) -> bytes:
    """The JSON body of every delivery of ``event``: identical on each retry (same id, same bytes)."""
    payload = {
        "id": event.id,
        "type": event.type,
        "created": event.created_at.isoformat().replace("+00:00", "Z"),
        "organization": {"id": event.organization_id, "slug": organization_slug},
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


@dataclass
class _Claimed:
    """A claimed delivery with what sending it needs, read by the claim itself."""

    delivery_id: int
    organization_id: int
    number: int
    retry_until: datetime
    endpoint: WebhookEndpoint
    event: WebhookEvent
    organization_slug: str


# One round trip claims the delivery (the lease) and reads its endpoint and event: at hundreds of deliveries
# a second, round trips are most of a delivery's cost (bench/webhook_throughput.py).
_CLAIM_SQL = """
UPDATE webhooks_webhookdelivery AS d
SET claimed_until = %(lease)s, attempt_count = d.attempt_count + 1
FROM webhooks_webhookendpoint AS e, webhooks_webhookevent AS ev, accounts_organization AS o
WHERE d.id = %(id)s AND d.status = 'pending' AND d.next_attempt_at <= %(now)s
  AND (d.claimed_until IS NULL OR d.claimed_until < %(now)s)
  AND e.id = d.endpoint_id AND ev.id = d.event_id AND o.id = d.organization_id
RETURNING d.organization_id, d.attempt_count, d.retry_until, e.id, e.url, e.enabled, e.secret_encrypted,
  e.previous_secret_encrypted, e.previous_secret_expires_at, e.consecutive_failures, ev.id, ev.type, ev.data,
  ev.created_at, o.slug
"""


def _claim(delivery_id: int, now: datetime) -> _Claimed | None:
    lease = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 30)
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {"id": delivery_id, "now": now, "lease": lease})
        row = cursor.fetchone()
    if row is None:
        return None
    (organization_id, number, retry_until, endpoint_id, url, enabled, secret, previous, previous_expires,
     failures, event_id, event_type, data, created_at, slug) = row  # fmt: skip
    endpoint = WebhookEndpoint(
        pk=endpoint_id, organization_id=organization_id, url=url, enabled=enabled, secret_encrypted=secret,
        previous_secret_encrypted=previous, previous_secret_expires_at=previous_expires,
        consecutive_failures=failures,
    )  # fmt: skip
    event = WebhookEvent(
        id=event_id, organization_id=organization_id, type=event_type, created_at=created_at,
        data=json.loads(data) if isinstance(data, str | bytes) else data,
    )  # fmt: skip
    return _Claimed(
        delivery_id=delivery_id, organization_id=organization_id, number=number, retry_until=retry_until,
        endpoint=endpoint, event=event, organization_slug=slug,
    )  # fmt: skip


def _post(claimed: _Claimed) -> tuple[int | None, str, str]:
    """POST the event; (status code or None, response excerpt, error)."""
    endpoint, event, number = claimed.endpoint, claimed.event, claimed.number
    body = event_body(event, claimed.organization_slug)
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
    claimed = _claim(delivery_id, timezone.now())
    if claimed is None:
        return None
    started = time.monotonic()
    if not claimed.endpoint.enabled and claimed.event.type != TEST_EVENT_TYPE:
        status_code, excerpt, error = None, "", "The endpoint is disabled."
        final = True
    else:
        status_code, excerpt, error = _post(claimed)
        final = False
    latency_ms = int((time.monotonic() - started) * 1000)
    succeeded = status_code is not None and 200 <= status_code < 300
    if status_code is not None and not succeeded:
        error = f"HTTP {status_code}"
    return _record(
        claimed=claimed, succeeded=succeeded, status_code=status_code, excerpt=excerpt, error=error[:500],
        latency_ms=latency_ms, final=final,
    )  # fmt: skip


# The attempt's log row and the delivery's new state in one statement (atomic by itself, one round trip).
_RECORD_SQL = """
WITH attempt AS (
  INSERT INTO webhooks_webhookattempt
    (organization_id, delivery_id, number, succeeded, status_code, latency_ms, response_excerpt, error, created_at)
  VALUES (%(organization_id)s, %(id)s, %(number)s, %(succeeded)s, %(status_code)s, %(latency_ms)s, %(excerpt)s,
    %(error)s, %(now)s)
)
UPDATE webhooks_webhookdelivery
SET claimed_until = NULL, status = %(status)s, last_status_code = %(status_code)s, last_error = %(error)s,
  delivered_at = %(delivered_at)s, next_attempt_at = COALESCE(%(next_at)s, next_attempt_at),
  enqueued_at = CASE WHEN %(retry)s THEN %(enqueued_at)s ELSE enqueued_at END
WHERE id = %(id)s
"""


def _record(
    *, claimed: _Claimed, succeeded: bool, status_code: int | None, excerpt: str, error: str, latency_ms: int,
    final: bool,
) -> AttemptOutcome:  # fmt: skip
    now = timezone.now()
    next_at = enqueued_at = None
    status = DeliveryStatus.PENDING
    queued = False
    if succeeded:
        status = DeliveryStatus.SUCCEEDED
    elif final or now >= claimed.retry_until:
        status = DeliveryStatus.FAILED
    else:
        delay = retry_delay(claimed.number)
        next_at = now + timedelta(seconds=delay)
        # A near retry waits in the queue; a far one is queued by the beat job when it is due.
        queued = delay <= settings.WEBHOOK_QUEUE_RETRY_MAX_SECONDS
        enqueued_at = next_at if queued else None
    params = {
        "id": claimed.delivery_id, "organization_id": claimed.organization_id, "number": claimed.number,
        "succeeded": succeeded, "status_code": status_code, "latency_ms": latency_ms, "excerpt": excerpt,
        "error": error, "now": now, "status": status, "delivered_at": now if succeeded else None,
        "next_at": next_at, "retry": next_at is not None, "enqueued_at": enqueued_at,
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_RECORD_SQL, params)
    if queued:
        deliveries_enqueue([claimed.delivery_id], countdown=(next_at - now).total_seconds())
    if succeeded and claimed.endpoint.consecutive_failures:
        # Only a write when there is something to reset: a busy healthy endpoint's row is not contended.
        WebhookEndpoint.objects.filter(pk=claimed.endpoint.pk, consecutive_failures__gt=0).update(
            consecutive_failures=0
        )
    elif not succeeded and not final:
        _count_failure(claimed.endpoint.pk)
    return AttemptOutcome(
        delivery_id=claimed.delivery_id, number=claimed.number, succeeded=succeeded, status_code=status_code,
        error=error, gave_up=status == DeliveryStatus.FAILED, next_attempt_at=next_at,
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
