"""Deliveries end to end against a real receiver on loopback: signed, sent after commit by a real Celery
worker, retried after server errors with the same event id, re-queued when their worker died, redelivered
by hand, and the endpoint disabled (its owners told) when it keeps failing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from accounts.tests.factories import make_organization, owner_of
from webhooks import signing
from webhooks.delivery import webhook_delivery_attempt
from webhooks.models import (
    DeliveryStatus,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from webhooks.services import (
    webhook_deliveries_redeliver,
    webhook_deliveries_resume,
    webhook_endpoint_create,
    webhook_endpoint_rotate_secret,
    webhook_event,
)


def _endpoint(receiver, **fields) -> WebhookEndpoint:
    endpoint = webhook_endpoint_create(organization=make_organization(), url=receiver.url, **fields)
    receiver.secret = endpoint.secret
    return endpoint


def _attempt_all(event) -> None:
    for delivery in WebhookDelivery.objects.filter(event=event):
        webhook_delivery_attempt(delivery_id=delivery.pk)


def test_worker_sends_signed_event_after_commit_and_retries_500s_with_the_same_id(
    celery_worker, webhook_receiver, settings
):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0.05
    webhook_receiver.statuses = [500, 503]
    endpoint = _endpoint(webhook_receiver)
    with transaction.atomic():
        event = webhook_event(
            organization_id=endpoint.organization_id, event_type=EventType.SOURCE_READY,
            data={"source": {"id": 7, "title": "Handbook"}},
        )  # fmt: skip
        assert webhook_receiver.requests == []  # nothing leaves before the change is committed
    webhook_receiver.wait_for(lambda r: event.pk in r.processed)

    requests = webhook_receiver.requests
    assert [r.status for r in requests] == [500, 503, 200]
    assert webhook_receiver.bad_signatures == 0
    assert {r.headers[signing.EVENT_ID_HEADER] for r in requests} == {event.pk}
    assert len({r.body for r in requests}) == 1  # the same bytes on every retry
    assert [r.headers[signing.ATTEMPT_HEADER] for r in requests] == ["1", "2", "3"]
    body = requests[0].event
    assert body["id"] == event.pk and body["type"] == "source.ready"
    assert body["organization"] == {"id": endpoint.organization_id, "slug": endpoint.organization.slug}
    assert body["data"] == {"source": {"id": 7, "title": "Handbook"}} and body["created"].endswith("Z")
    assert webhook_receiver.deliveries_per_event[event.pk] == 3 and len(webhook_receiver.processed) == 1

    delivery = WebhookDelivery.objects.get(event=event)
    _wait_until(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED)
    delivery.refresh_from_db()
    assert delivery.attempt_count == 3 and delivery.last_status_code == 200 and delivery.delivered_at
    attempts = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [(a.number, a.status_code, a.succeeded) for a in attempts] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert all(a.latency_ms is not None for a in attempts)
    assert attempts[0].error == "HTTP 500" and '"received": false' in attempts[0].response_excerpt
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0  # a success ends the streak


def test_delivery_whose_worker_died_is_sent_by_the_beat_job(celery_worker, webhook_receiver):
    endpoint = _endpoint(webhook_receiver)
    # What a worker killed mid-send leaves: a claimed attempt whose lease has passed, its task gone.
    long_ago = timezone.now() - timedelta(hours=1)
    event = WebhookEvent.objects.create(organization_id=endpoint.organization_id, type=EventType.LEAD_CREATED)
    WebhookDelivery.objects.create(
        organization_id=endpoint.organization_id, endpoint=endpoint, event=event, attempt_count=1,
        claimed_until=long_ago, enqueued_at=long_ago, next_attempt_at=long_ago,
        retry_until=timezone.now() + timedelta(days=1),
    )  # fmt: skip
    assert webhook_deliveries_resume() == 1
    webhook_receiver.wait_for(lambda r: event.pk in r.processed)
    assert webhook_receiver.requests[-1].headers[signing.ATTEMPT_HEADER] == "2"
    assert webhook_deliveries_resume() == 0  # queued once, not on every run
    _wait_until(lambda: WebhookDelivery.objects.get(event=event).status == DeliveryStatus.SUCCEEDED)
    assert len(webhook_receiver.requests) == 1


@pytest.mark.django_db
def test_rotated_secret_signs_beside_the_previous_one_until_it_expires(webhook_receiver):
    endpoint = _endpoint(webhook_receiver)
    old = endpoint.secret
    new = webhook_endpoint_rotate_secret(endpoint=endpoint, previous_valid_hours=24)
    assert new != old and endpoint.secret == new
    _attempt_all(
        webhook_event(organization_id=endpoint.organization_id, event_type=EventType.LEAD_CREATED, data={})
    )
    received = webhook_receiver.requests[-1]
    header = received.headers[signing.SIGNATURE_HEADER]
    assert header.count("v1=") == 2
    assert signing.verify(header=header, body=received.body, secret=old)
    assert signing.verify(header=header, body=received.body, secret=new)

    webhook_endpoint_rotate_secret(endpoint=endpoint, previous_valid_hours=0)  # the old secret retired now
    webhook_receiver.secret = endpoint.secret
    _attempt_all(
        webhook_event(organization_id=endpoint.organization_id, event_type=EventType.LEAD_CREATED, data={})
    )
    header = webhook_receiver.requests[-1].headers[signing.SIGNATURE_HEADER]
    assert header.count("v1=") == 1 and webhook_receiver.bad_signatures == 0
    assert not signing.verify(header=header, body=webhook_receiver.requests[-1].body, secret=new)


@pytest.mark.django_db
def test_endpoint_failing_again_and_again_is_disabled_and_its_owners_emailed(
    webhook_receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    webhook_receiver.statuses = [500] * 10
    endpoint = _endpoint(webhook_receiver)
    events = [
        webhook_event(
            organization_id=endpoint.organization_id, event_type=EventType.MESSAGE_CREATED, data={"n": n}
        )
        for n in range(4)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        for event in events[:3]:
            _attempt_all(event)
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_at and "3 failed attempts" in endpoint.disabled_reason
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [owner_of(endpoint.organization).email]
    assert endpoint.url in mail.outbox[0].body and "HTTP 500" in mail.outbox[0].body

    sent = len(webhook_receiver.requests)
    _attempt_all(events[3])  # queued before it was disabled: given up without a request
    assert len(webhook_receiver.requests) == sent
    assert WebhookDelivery.objects.get(event=events[3]).status == DeliveryStatus.FAILED
    assert (
        webhook_event(organization_id=endpoint.organization_id, event_type=EventType.MESSAGE_CREATED, data={})
        is None
    )
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_delivery_past_its_retry_window_gives_up(webhook_receiver):
    webhook_receiver.statuses = [500]
    endpoint = _endpoint(webhook_receiver)
    event = webhook_event(
        organization_id=endpoint.organization_id, event_type=EventType.LEAD_CREATED, data={}
    )
    WebhookDelivery.objects.filter(event=event).update(retry_until=timezone.now())
    _attempt_all(event)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.FAILED and delivery.last_error == "HTTP 500"
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None  # nothing left to send


@pytest.mark.django_db
def test_redelivery_sends_the_same_event_which_the_receiver_processes_once(webhook_receiver):
    endpoint = _endpoint(webhook_receiver)
    event = webhook_event(
        organization_id=endpoint.organization_id, event_type=EventType.LEAD_CREATED, data={"a": 1}
    )
    _attempt_all(event)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None  # a duplicate task does nothing
    assert webhook_deliveries_redeliver(deliveries=[delivery]) == 1
    _attempt_all(event)
    assert webhook_receiver.deliveries_per_event[event.pk] == 2 and len(webhook_receiver.processed) == 1
    assert WebhookDelivery.objects.get(pk=delivery.pk).attempt_count == 2


def _wait_until(condition, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
