"""Webhooks in the admin: endpoints added with the address guard, the secret shown to owners and admins,
"Send test event", "Rotate secret" (confirmed), and "Redeliver" in the delivery log."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Role
from accounts.tests.factories import add_member, make_organization, owner_of
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks.tests.factories import make_endpoint

pytestmark = pytest.mark.django_db
ADD = reverse("admin:webhooks_webhookendpoint_add")


def _form(url: str, **overrides) -> dict:
    return {
        "url": url,
        "description": "CRM",
        "events": ["message.created", "lead.created"],
        "enabled": "on",
        **overrides,
    }


def test_owner_adds_an_endpoint_and_a_private_address_is_refused(client, webhook_receiver):
    organization = make_organization()
    client.force_login(owner_of(organization))
    refused = client.post(ADD, _form("http://127.0.0.1:9000/hook"))
    assert refused.status_code == 200 and "not allowed for webhooks" in refused.content.decode()
    assert not WebhookEndpoint.objects.exists()

    response = client.post(ADD, _form(webhook_receiver.url))
    assert response.status_code == 302, response.content.decode()[:2000]
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.organization == organization and endpoint.events == ["message.created", "lead.created"]
    page = client.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk])).content.decode()
    assert endpoint.secret in page and "Send test event" in page and "Rotate secret" in page


def test_members_see_endpoints_but_not_their_secret(client):
    organization = make_organization()
    endpoint = make_endpoint(organization=organization, url="https://hooks.example.com/a")
    client.force_login(add_member(organization=organization, role=Role.MEMBER))
    page = client.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]))
    assert page.status_code == 200 and endpoint.secret not in page.content.decode()
    url = reverse("admin:webhooks_webhookendpoint_send_test_event_detail", args=[endpoint.pk])
    assert client.get(url).status_code == 403 and not WebhookEvent.objects.exists()


def test_send_test_event_rotate_secret_and_redeliver(client):
    organization = make_organization()
    endpoint = make_endpoint(organization=organization, url="https://hooks.example.com/a")
    client.force_login(owner_of(organization))
    client.get(reverse("admin:webhooks_webhookendpoint_send_test_event_detail", args=[endpoint.pk]))
    event = WebhookEvent.objects.get()
    assert event.type == "webhook.test" and event.data["endpoint"]["id"] == endpoint.pk

    rotate = reverse("admin:webhooks_webhookendpoint_rotate_secret_detail", args=[endpoint.pk])
    old = endpoint.secret
    assert "Rotate the secret" in client.get(rotate).content.decode()
    endpoint.refresh_from_db()
    assert endpoint.secret == old  # the page only asks
    client.post(rotate)
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.signing_secrets()[1] == old

    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, attempt_count=3)
    client.post(
        reverse("admin:webhooks_webhookdelivery_changelist"),
        {"action": "redeliver", "_selected_action": [str(delivery.pk)]},
    )
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.PENDING
