"""Reads of webhooks: an organization's endpoints and deliveries (never another organization's)."""

from __future__ import annotations

from django.db.models import QuerySet

from webhooks.exceptions import EndpointNotFound
from webhooks.models import WebhookDelivery, WebhookEndpoint


def endpoints_for_organization(*, organization_id: int) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(organization_id=organization_id).order_by("-created_at", "-pk")


def endpoint_get(*, organization_id: int, endpoint_id: int) -> WebhookEndpoint:
    endpoint = endpoints_for_organization(organization_id=organization_id).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise EndpointNotFound()
    return endpoint


def deliveries_for_endpoint(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return (
        WebhookDelivery.objects.filter(organization_id=endpoint.organization_id, endpoint=endpoint)
        .select_related("event")
        .order_by("-created_at", "-pk")
    )


def event_wanted(*, organization_id: int, event_type: str) -> bool:
    """Whether an enabled endpoint of the organization subscribes to ``event_type``: lets a caller skip
    building a payload that nobody receives (one indexed query on the chat's path)."""
    return WebhookEndpoint.objects.filter(
        organization_id=organization_id, enabled=True, events__contains=[event_type]
    ).exists()
