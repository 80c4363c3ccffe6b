"""Test data for webhooks: endpoints made through the service (with a real, encrypted signing secret)."""

from __future__ import annotations

from django.db import models

from accounts.models import Organization
from webhooks.models import WebhookEndpoint, new_signing_secret


def make_endpoint(
    *, organization: Organization, url: str, events: list[str] | None = None, **fields
) -> WebhookEndpoint:
    """An endpoint saved as it is (no address check: tests choose where it points)."""
    endpoint = WebhookEndpoint(organization=organization, url=url, **fields)
    if events is not None:
        endpoint.events = events
    endpoint.set_secret(new_signing_secret())
    endpoint.save()
    return endpoint


def isolation_factory(model: type[models.Model], organization: Organization) -> models.Model | None:
    """The isolation walk's endpoint: with a secret that decrypts (the admin shows it to owners)."""
    if model is WebhookEndpoint:
        slug = organization.slug.replace("-", "")
        return make_endpoint(organization=organization, url=f"https://leak{slug}.example.com/hook")
    return None
