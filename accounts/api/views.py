"""Accounts API: the caller's organization, and API key management for owners and admins."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.api.serializers import ApiKeyCreateSerializer, ApiKeySerializer, OrganizationSerializer
from accounts.models import Organization
from accounts.selectors import WRITE_ROLES, active_organization, active_role, api_keys_for_organization
from accounts.services import api_key_create, api_key_revoke


def _organization(request: Request) -> Organization:
    organization = active_organization(request)
    if organization is None:
        raise NotFound("You do not belong to an organization.")
    return organization


def _require_key_manager(request: Request) -> Organization:
    """Only signed-in owners and admins manage keys; an API key cannot mint or revoke keys."""
    if getattr(request.auth, "is_api_key", False) or active_role(request) not in WRITE_ROLES:
        raise PermissionDenied("Only owners and admins, signed in, can manage API keys.")
    return _organization(request)


class OrganizationView(APIView):
    """GET /api/v1/organization/: the organization of the API key (or of the signed-in member)."""

    @extend_schema(responses=OrganizationSerializer)
    def get(self, request: Request) -> Response:
        organization = _organization(request)
        data = OrganizationSerializer(organization).data
        api_key = request.auth if getattr(request.auth, "is_api_key", False) else None
        if api_key is not None:
            data["api_key"] = ApiKeySerializer(api_key).data
        else:
            data["role"] = active_role(request)
        return Response(data)


class ApiKeyListView(APIView):
    """GET lists the organization's keys (never a secret); POST creates one and returns its key once."""

    @extend_schema(responses=ApiKeySerializer(many=True))
    def get(self, request: Request) -> Response:
        organization = _require_key_manager(request)
        paginator = api_settings.DEFAULT_PAGINATION_CLASS()
        page = paginator.paginate_queryset(
            api_keys_for_organization(organization=organization), request, view=self
        )
        return paginator.get_paginated_response(ApiKeySerializer(page, many=True).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeySerializer})
    def post(self, request: Request) -> Response:
        organization = _require_key_manager(request)
        payload = ApiKeyCreateSerializer(data=request.data, context={"organization": organization})
        payload.is_valid(raise_exception=True)
        issued = api_key_create(organization=organization, created_by=request.user, **payload.validated_data)
        data = {**ApiKeySerializer(issued.api_key).data, "key": issued.key}
        return Response(data, status=status.HTTP_201_CREATED)


class ApiKeyRevokeView(APIView):
    """POST /api/v1/api-keys/<prefix>/revoke/"""

    @extend_schema(request=None, responses=ApiKeySerializer)
    def post(self, request: Request, prefix: str) -> Response:
        organization = _require_key_manager(request)
        api_key = api_keys_for_organization(organization=organization).filter(prefix=prefix).first()
        if api_key is None:
            raise NotFound("No such API key.")
        return Response(ApiKeySerializer(api_key_revoke(api_key=api_key)).data)
