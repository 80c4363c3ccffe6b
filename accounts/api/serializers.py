from __future__ import annotations

from rest_framework import serializers

from accounts.api.inputs import InputSerializer
from accounts.models import ApiKey, Organization


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "api_allowed_origins", "created_at"]


class ApiKeySerializer(serializers.ModelSerializer):
    # Never the secret. chatbots adds the bots the key may use (chatbots/api/api_key_views.py).

    status = serializers.CharField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["prefix", "name", "read_only", "expires_at", "last_used_at", "created_at", "status"]


class ApiKeyCreateSerializer(InputSerializer):
    name = serializers.CharField(max_length=100)
    read_only = serializers.BooleanField(default=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
