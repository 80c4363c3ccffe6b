from __future__ import annotations

from rest_framework import serializers

from accounts.models import ApiKey, Organization


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "created_at"]


class ApiKeySerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["prefix", "name", "read_only", "bot_ids", "expires_at", "last_used_at", "status"]
