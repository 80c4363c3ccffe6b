"""Accounts API: who am I talking as (organization, and the key or the member's role)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.serializers import ApiKeySerializer, OrganizationSerializer
from accounts.selectors import active_organization, active_role


class OrganizationView(APIView):
    """GET /api/v1/organization/: the organization of the API key (or of the signed-in member)."""

    @extend_schema(responses=OrganizationSerializer)
    def get(self, request: Request) -> Response:
        organization = active_organization(request)
        if organization is None:
            raise NotFound("You do not belong to an organization.")
        data = OrganizationSerializer(organization).data
        api_key = request.auth if getattr(request.auth, "is_api_key", False) else None
        if api_key is not None:
            data["api_key"] = ApiKeySerializer(api_key).data
        else:
            data["role"] = active_role(request)
        return Response(data)
