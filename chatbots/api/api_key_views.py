"""The accounts API for API keys, with the bots each key may use (``bot_ids``; empty: every bot).

Accounts knows no bots, so these views extend its views (``accounts/api/views.py``) and the URLs route
here. The limit itself is ``chatbots.models.ApiKeyBotLimit``.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request

from accounts.api import views as accounts_views
from accounts.api.serializers import ApiKeyCreateSerializer, ApiKeySerializer
from accounts.models import ApiKey, Organization
from accounts.services import IssuedApiKey
from chatbots.models import Bot
from chatbots.selectors import api_key_bot_ids
from chatbots.services import api_key_set_bots


@extend_schema_serializer(component_name="ApiKey")
class ApiKeyWithBotsSerializer(ApiKeySerializer):
    bot_ids = serializers.SerializerMethodField(
        help_text="Ids of the bots the key may use; empty when it may use every bot (see all_bots)."
    )
    all_bots = serializers.SerializerMethodField(
        help_text="True when the key may use every bot of the organization (not limited)."
    )

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields[:3], "bot_ids", "all_bots", *ApiKeySerializer.Meta.fields[3:]]

    def _bot_ids(self, api_key: ApiKey) -> list[int] | None:
        known = self.context.get("bot_ids")
        if known is None or api_key.pk not in known:
            known = api_key_bot_ids(api_keys=[api_key])
        return known[api_key.pk]

    def get_bot_ids(self, api_key: ApiKey) -> list[int]:
        return self._bot_ids(api_key) or []

    def get_all_bots(self, api_key: ApiKey) -> bool:
        return self._bot_ids(api_key) is None


@extend_schema_serializer(component_name="ApiKeyCreate")
class ApiKeyCreateWithBotsSerializer(ApiKeyCreateSerializer):
    bot_ids = serializers.ListField(
        child=serializers.IntegerField(), default=list,
        help_text="Limit the key to these bots of your organization; empty: every bot.",
    )  # fmt: skip

    def validate_bot_ids(self, value: list[int]) -> list[Bot]:
        organization = self.context["organization"]
        bots = list(Bot.objects.filter(organization=organization, pk__in=value).order_by("pk"))
        if {bot.pk for bot in bots} != set(value):
            raise serializers.ValidationError("Unknown bot ids for this organization.")
        return bots


class ApiKeyBotsMixin(accounts_views.ApiKeyViewMixin):
    serializer_class = ApiKeyWithBotsSerializer
    create_serializer_class = ApiKeyCreateWithBotsSerializer

    def serialize(self, api_keys: list[ApiKey]) -> list[dict[str, Any]]:
        context = {"bot_ids": api_key_bot_ids(api_keys=api_keys)}  # one query for the whole page
        return self.serializer_class(api_keys, many=True, context=context).data

    @transaction.atomic
    def create(self, *, request: Request, organization: Organization, data: dict[str, Any]) -> IssuedApiKey:
        bots = data.pop("bot_ids", [])
        issued = super().create(request=request, organization=organization, data=data)
        api_key_set_bots(api_key=issued.api_key, bots=bots)
        return issued


class OrganizationView(ApiKeyBotsMixin, accounts_views.OrganizationView):
    pass


class ApiKeyListView(ApiKeyBotsMixin, accounts_views.ApiKeyListView):
    @extend_schema(responses=ApiKeyWithBotsSerializer(many=True))
    def get(self, request: Request) -> Any:
        return super().get(request)

    @extend_schema(request=ApiKeyCreateWithBotsSerializer, responses={201: ApiKeyWithBotsSerializer})
    def post(self, request: Request) -> Any:
        return super().post(request)


class ApiKeyRevokeView(ApiKeyBotsMixin, accounts_views.ApiKeyRevokeView):
    @extend_schema(request=None, responses=ApiKeyWithBotsSerializer)
    def post(self, request: Request, prefix: str) -> Any:
        return super().post(request, prefix)
