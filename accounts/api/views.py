"""Accounts API: the caller's organization, and API key management for owners and admins.

Which bots a key may use belongs to chatbots: ``chatbots/api/api_key_views.py`` extends these views
through ``serialize`` and ``create`` (and is what the URLs route to).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.api.scope import request_api_key, request_organization
from accounts.api.serializers import ApiKeyCreateSerializer, ApiKeySerializer, OrganizationSerializer
from accounts.models import ApiKey, Organization
from accounts.selectors import WRITE_ROLES, active_role, api_keys_for_organization
from accounts.services import IssuedApiKey, api_key_create, api_key_revoke


def _require_key_manager(request: Request) -> Organization:
    """Only signed-in owners and admins manage keys; an API key cannot mint or revoke keys."""
    if request_api_key(request) is not None or active_role(request) not in WRITE_ROLES:
        raise PermissionDenied("Only owners and admins, signed in, can manage API keys.")
    return request_organization(request)


class ApiKeyViewMixin:
    """How the views show and create keys; subclasses add to both."""

    serializer_class: type[ApiKeySerializer] = ApiKeySerializer
    create_serializer_class: type[ApiKeyCreateSerializer] = ApiKeyCreateSerializer

    def serialize(self, api_keys: list[ApiKey]) -> list[dict[str, Any]]:
        return self.serializer_class(api_keys, many=True).data

    def create(self, *, request: Request, organization: Organization, data: dict[str, Any]) -> IssuedApiKey:
        return api_key_create(organization=organization, created_by=request.user, **data)


class OrganizationView(ApiKeyViewMixin, APIView):
    """GET /api/v1/organization/: the organization of the API key (or of the signed-in member)."""

    @extend_schema(responses=OrganizationSerializer)
    def get(self, request: Request) -> Response:
        organization = request_organization(request)
        data = OrganizationSerializer(organization).data
        api_key = request_api_key(request)
        if api_key is not None:
            data["api_key"] = self.serialize([api_key])[0]
        else:
            data["role"] = active_role(request)
        return Response(data)


class ApiKeyListView(ApiKeyViewMixin, APIView):
    """GET lists the organization's keys (never a secret); POST creates one and returns its key once."""

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=ApiKeySerializer(many=True))
    def get(self, request: Request) -> Response:
        organization = _require_key_manager(request)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            api_keys_for_organization(organization=organization), request, view=self
        )
        return paginator.get_paginated_response(self.serialize(list(page)))

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeySerializer})
    def post(self, request: Request) -> Response:
        organization = _require_key_manager(request)
        payload = self.create_serializer_class(data=request.data, context={"organization": organization})
        payload.is_valid(raise_exception=True)
        issued = self.create(request=request, organization=organization, data=dict(payload.validated_data))
        data = {**self.serialize([issued.api_key])[0], "key": issued.key}
        return Response(data, status=status.HTTP_201_CREATED)


class ApiKeyRevokeView(ApiKeyViewMixin, APIView):
    """POST /api/v1/api-keys/<prefix>/revoke/"""

    @extend_schema(request=None, responses=ApiKeySerializer)
    def post(self, request: Request, prefix: str) -> Response:
        organization = _require_key_manager(request)
        api_key = api_keys_for_organization(organization=organization).filter(prefix=prefix).first()
        if api_key is None:
            raise NotFound("No such API key.")
        return Response(self.serialize([api_key_revoke(api_key=api_key)])[0])
