"""The webhook endpoints API: owners and admins (and unlimited API keys) manage endpoints; the secret is
shown when created or rotated; another organization's endpoints are not found and stay untouched."""

from __future__ import annotations

import pytest

from accounts.models import Role
from accounts.services import api_key_create
from accounts.tests.factories import add_member, make_organization, owner_of
from chatbots.services import api_key_set_bots
from chatbots.tests.factories import make_bot
from webhooks.models import EventType, WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks.services import webhook_event
from webhooks.tests.factories import make_endpoint

pytestmark = pytest.mark.django_db
BASE = "/api/v1/webhook-endpoints/"


def _key(organization, **options) -> dict[str, str]:
    issued = api_key_create(
        organization=organization, created_by=owner_of(organization), name="hooks", **options
    )
    return {"HTTP_AUTHORIZATION": f"Bearer {issued.key}"}


def test_owner_creates_lists_changes_and_deletes_an_endpoint(client, webhook_receiver):
    organization = make_organization()
    client.force_login(owner_of(organization))
    created = client.post(
        BASE, {"url": webhook_receiver.url, "description": "CRM", "events": ["lead.created", "message.created"]},
        content_type="application/json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["message.created", "lead.created"]
    endpoint = WebhookEndpoint.objects.get(pk=body["id"], organization=organization)
    assert endpoint.secret == body["secret"]

    listed = client.get(BASE).json()
    assert [row["id"] for row in listed["results"]] == [endpoint.pk] and "secret" not in listed["results"][0]
    changed = client.patch(f"{BASE}{endpoint.pk}/", {"enabled": False}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["enabled"] is False

    rotated = client.post(
        f"{BASE}{endpoint.pk}/rotate-secret/", {"previous_valid_hours": 2}, content_type="application/json"
    )
    assert rotated.status_code == 200 and rotated.json()["secret"] != body["secret"]
    assert rotated.json()["previous_secret_expires_at"]

    test = client.post(f"{BASE}{endpoint.pk}/test/")
    assert test.status_code == 202
    assert WebhookEvent.objects.get(pk=test.json()["event_id"]).type == "webhook.test"
    deliveries = client.get(f"{BASE}{endpoint.pk}/deliveries/").json()["results"]
    assert deliveries[0]["event_type"] == "webhook.test" and deliveries[0]["attempts"] == []
    redelivered = client.post(f"{BASE}{endpoint.pk}/deliveries/{deliveries[0]['id']}/redeliver/")
    assert redelivered.status_code == 202 and redelivered.json() == {"queued": 1}

    assert client.delete(f"{BASE}{endpoint.pk}/").status_code == 204
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://169.254.169.254/latest",
        "http://10.0.0.5/x",
        "ftp://example.com/x",
    ],
)
def test_private_and_non_http_addresses_are_refused(client, url):
    organization = make_organization()
    client.force_login(owner_of(organization))
    response = client.post(BASE, {"url": url}, content_type="application/json")
    assert response.status_code == 400
    assert not WebhookEndpoint.objects.exists()


def test_outsider_finds_no_endpoint_of_another_organization_and_changes_nothing(client):
    a = make_organization()
    endpoint = make_endpoint(organization=a, url="https://hooks.example.com/a")
    event = webhook_event(organization_id=a.pk, event_type=EventType.LEAD_CREATED, data={"lead": 1})
    delivery = WebhookDelivery.objects.get(event=event)
    before = (endpoint.secret_encrypted, endpoint.url, endpoint.enabled)
    client.force_login(owner_of(make_organization()))
    paths = [
        ("get", f"{BASE}{endpoint.pk}/"), ("patch", f"{BASE}{endpoint.pk}/"), ("delete", f"{BASE}{endpoint.pk}/"),
        ("post", f"{BASE}{endpoint.pk}/rotate-secret/"), ("post", f"{BASE}{endpoint.pk}/test/"),
        ("get", f"{BASE}{endpoint.pk}/deliveries/"), ("post", f"{BASE}{endpoint.pk}/deliveries/{delivery.pk}/redeliver/"),
    ]  # fmt: skip
    for method, path in paths:
        response = getattr(client, method)(path, {"enabled": False}, content_type="application/json")
        assert response.status_code == 404, (method, path, response.status_code)
        assert b"hooks.example.com" not in response.content
    assert client.get(BASE).json()["results"] == []
    endpoint.refresh_from_db()
    assert (endpoint.secret_encrypted, endpoint.url, endpoint.enabled) == before
    assert WebhookEvent.objects.count() == 1 and WebhookDelivery.objects.get().attempt_count == 0


def test_members_read_only_keys_and_bot_limited_keys_cannot_change_endpoints(client):
    organization = make_organization()
    endpoint = make_endpoint(organization=organization, url="https://hooks.example.com/a")
    client.force_login(add_member(organization=organization, role=Role.MEMBER))
    assert client.get(BASE).status_code == 200
    assert (
        client.patch(f"{BASE}{endpoint.pk}/", {"enabled": False}, content_type="application/json").status_code
        == 403
    )
    client.logout()
    read_only = _key(organization, read_only=True)
    assert client.get(BASE, **read_only).status_code == 200
    assert client.post(f"{BASE}{endpoint.pk}/test/", **read_only).status_code == 403

    issued = api_key_create(organization=organization, created_by=owner_of(organization), name="one bot")
    api_key_set_bots(api_key=issued.api_key, bots=[make_bot(organization=organization)])
    limited = {"HTTP_AUTHORIZATION": f"Bearer {issued.key}"}
    assert client.get(BASE, **limited).status_code == 403  # an endpoint receives every bot's events
    assert (
        client.post(
            BASE, {"url": "https://hooks.example.com/b"}, content_type="application/json", **limited
        ).status_code
        == 403
    )
    full = _key(organization)
    assert client.post(f"{BASE}{endpoint.pk}/test/", **full).status_code == 202
    endpoint.refresh_from_db()
    assert endpoint.enabled and WebhookEndpoint.objects.count() == 1
