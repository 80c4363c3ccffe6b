"""Endpoint URLs go through the outbound guard (config/outbound.py), when saved and at every connection:
private, local and cloud-internal addresses are refused unless OUTBOUND_ALLOWED_NETWORKS lists them."""

from __future__ import annotations

import pytest

from accounts.tests.factories import make_organization
from config.testing import REFUSAL_WORDS, REFUSED_HOSTS
from webhooks.delivery import webhook_delivery_attempt
from webhooks.exceptions import EndpointUrlRefused
from webhooks.models import EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_endpoint_create, webhook_event

pytestmark = pytest.mark.django_db


def test_every_refused_host_is_refused_as_an_endpoint():
    organization = make_organization()
    for host, what in REFUSED_HOSTS:
        with pytest.raises(EndpointUrlRefused) as refused:
            webhook_endpoint_create(organization=organization, url=f"http://{host}:8080/hook")
        assert any(word in refused.value.message for word in REFUSAL_WORDS), what
    assert not WebhookEndpoint.objects.exists()


def test_an_address_refused_by_the_time_of_sending_is_never_contacted(webhook_receiver, settings):
    endpoint = webhook_endpoint_create(organization=make_organization(), url=webhook_receiver.url)
    settings.OUTBOUND_ALLOWED_NETWORKS = []  # the operator no longer trusts it: plain loopback again
    event = webhook_event(
        organization_id=endpoint.organization_id, event_type=EventType.LEAD_CREATED, data={}
    )
    webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get(event=event).pk)
    assert webhook_receiver.requests == []
    attempt = WebhookAttempt.objects.get()
    assert not attempt.succeeded and "private, local or cloud-internal" in attempt.error
