from __future__ import annotations

from django.apps import apps
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
        fields = [
            "prefix",
            "name",
            "read_only",
            "bot_ids",
            "expires_at",
            "last_used_at",
            "created_at",
            "status",
        ]


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    read_only = serializers.BooleanField(default=False)
    bot_ids = serializers.ListField(child=serializers.IntegerField(), default=list)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate_bot_ids(self, value: list[int]) -> list[int]:
        # Bots are looked up lazily: accounts does not import chatbots.
        bot_model = apps.get_model("chatbots", "Bot")
        organization = self.context["organization"]
        found = set(
            bot_model.objects.filter(organization=organization, pk__in=value).values_list("pk", flat=True)
        )
        if found != set(value):
            raise serializers.ValidationError("Unknown bot ids for this organization.")
        return sorted(found)
