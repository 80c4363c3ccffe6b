"""Webhook endpoints API: list, create, change, delete, rotate the secret, send a test event, read the
delivery log and redeliver.

Endpoints belong to the caller's organization; another organization's endpoint is not found. Owners and
admins (and API keys that are not read-only) write. Webhooks knows no bots: ``chatbots/api/webhook_views.py``
extends these views to refuse API keys limited to certain bots (an endpoint receives every bot's events)
through ``check_access``, and the URLs route there.
"""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.api.scope import request_organization, require_writer
from accounts.audit import audit_api_change
from accounts.models import AuditAction
from webhooks.api.serializers import (
    RedeliverySerializer,
    SecretRotationSerializer,
    TestEventSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWithSecretSerializer,
)
from webhooks.models import WebhookAttempt, WebhookEndpoint
from webhooks.selectors import deliveries_for_endpoint, endpoint_get, endpoints_for_organization
from webhooks.services import (
    webhook_deliveries_redeliver,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_send_test,
    webhook_endpoint_update,
)

WHAT = "webhook endpoints"


class WebhookAPIView(APIView):
    # (No docstring: the OpenAPI document would show it as every operation's description.)

    def check_access(self, *, write: bool) -> None:
        """Refuse callers who may not read (or, with ``write``, change) the organization's webhooks."""
        request_organization(self.request)
        if write:
            require_writer(self.request, what=WHAT)

    def get_endpoint(self, endpoint_id: int, *, write: bool = False) -> WebhookEndpoint:
        self.check_access(write=write)
        return endpoint_get(organization_id=request_organization(self.request).pk, endpoint_id=endpoint_id)

    def audit(self, action: str, endpoint_id: int | None) -> None:
        audit_api_change(request=self.request, organization=request_organization(self.request), action=action,
                         target=f"webhook endpoint {endpoint_id}")  # fmt: skip


class WebhookEndpointListView(WebhookAPIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=WebhookEndpointSerializer(many=True))
    def get(self, request: Request) -> Response:
        self.check_access(write=False)
        endpoints = endpoints_for_organization(organization_id=request_organization(request).pk)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(endpoints, request, view=self)
        return paginator.get_paginated_response(WebhookEndpointSerializer(page, many=True).data)

    @extend_schema(request=WebhookEndpointSerializer, responses={201: WebhookEndpointWithSecretSerializer})
    def post(self, request: Request) -> Response:
        """Add an endpoint; the answer carries its signing secret (also readable in the admin)."""
        self.check_access(write=True)
        payload = WebhookEndpointSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(
            organization=request_organization(request), **payload.validated_data
        )
        self.audit(AuditAction.OBJECT_CREATED, endpoint.pk)
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookEndpointDetailView(WebhookAPIView):
    @extend_schema(responses=WebhookEndpointSerializer)
    def get(self, request: Request, endpoint_id: int) -> Response:
        return Response(WebhookEndpointSerializer(self.get_endpoint(endpoint_id)).data)

    @extend_schema(request=WebhookEndpointSerializer, responses=WebhookEndpointSerializer)
    def patch(self, request: Request, endpoint_id: int) -> Response:
        """Change an endpoint; enabling a disabled one starts it afresh."""
        endpoint = self.get_endpoint(endpoint_id, write=True)
        payload = WebhookEndpointSerializer(endpoint, data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_update(endpoint=endpoint, data=payload.validated_data)
        self.audit(AuditAction.OBJECT_CHANGED, endpoint.pk)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, endpoint_id: int) -> Response:
        """Delete an endpoint with its delivery log."""
        endpoint = self.get_endpoint(endpoint_id, write=True)
        webhook_endpoint_delete(endpoint=endpoint)
        self.audit(AuditAction.OBJECT_DELETED, endpoint_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointRotateSecretView(WebhookAPIView):
    @extend_schema(request=SecretRotationSerializer, responses=WebhookEndpointWithSecretSerializer)
    def post(self, request: Request, endpoint_id: int) -> Response:
        """A new signing secret; the previous one keeps signing beside it for ``previous_valid_hours``."""
        endpoint = self.get_endpoint(endpoint_id, write=True)
        payload = SecretRotationSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        webhook_endpoint_rotate_secret(endpoint=endpoint, **payload.validated_data)
        self.audit(AuditAction.OBJECT_CHANGED, endpoint.pk)
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data)


class WebhookEndpointTestView(WebhookAPIView):
    @extend_schema(request=None, responses={202: TestEventSerializer})
    def post(self, request: Request, endpoint_id: int) -> Response:
        """Send a ``webhook.test`` event to this endpoint (watch it in its deliveries)."""
        endpoint = self.get_endpoint(endpoint_id, write=True)
        event = webhook_endpoint_send_test(endpoint=endpoint)
        return Response({"event_id": event.pk}, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryListView(WebhookAPIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=WebhookDeliverySerializer(many=True))
    def get(self, request: Request, endpoint_id: int) -> Response:
        """The endpoint's deliveries, newest first, each with its attempts."""
        endpoint = self.get_endpoint(endpoint_id)
        deliveries = deliveries_for_endpoint(endpoint=endpoint).prefetch_related(
            Prefetch("attempts", queryset=WebhookAttempt.objects.order_by("number"))
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(deliveries, request, view=self)
        return paginator.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)


class WebhookRedeliverView(WebhookAPIView):
    @extend_schema(request=None, responses={202: RedeliverySerializer})
    def post(self, request: Request, endpoint_id: int, delivery_id: int) -> Response:
        """Send a delivery again now, with the same event id and body."""
        endpoint = self.get_endpoint(endpoint_id, write=True)
        delivery = deliveries_for_endpoint(endpoint=endpoint).filter(pk=delivery_id).first()
        if delivery is None:
            raise NotFound("No such delivery.")
        queued = webhook_deliveries_redeliver(deliveries=[delivery])
        return Response({"queued": queued}, status=status.HTTP_202_ACCEPTED)
