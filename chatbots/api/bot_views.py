"""Bots API: list, create, read, change (PUT and PATCH) and delete bots, attach and detach their knowledge
sources, and test their provider connection.

Session users act in their active organization (owners and admins write); API keys act in theirs, limited
to the key's bots, and read-only keys only read. Another organization's bot is simply not found.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.api.inputs import InputSerializer
from accounts.api.scope import request_api_key, request_organization, require_writer
from accounts.audit import audit_api_change
from accounts.models import AuditAction
from chatbots.api.access import bots_for_request, require_unlimited_writer
from chatbots.api.bot_serializers import BotSerializer, ConnectionReportSerializer
from chatbots.models import Bot
from chatbots.selectors import bot_source_ids, sources_for_api_key
from chatbots.services import (
    bot_create,
    bot_delete,
    bot_source_remove,
    bot_sources_add,
    bot_test_connection,
    bot_update,
)
from knowledge.models import Source


def bot_for_request(request: Request, public_id: str) -> Bot:
    bot = bots_for_request(request).filter(public_id=public_id).first()
    if bot is None:
        raise NotFound("No such bot.")
    return bot


class BotListView(APIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=BotSerializer(many=True))
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            bots_for_request(request).order_by("name", "pk"), request, view=self
        )
        return paginator.get_paginated_response(BotSerializer(page, many=True).data)

    @extend_schema(request=BotSerializer, responses={201: BotSerializer})
    def post(self, request: Request) -> Response:
        require_unlimited_writer(request, what="bots")
        payload = BotSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data, api_key, fallback_api_key = payload.split()
        bot = bot_create(
            organization=request_organization(request),
            api_key=api_key,
            fallback_api_key=fallback_api_key,
            **data,
        )
        audit_api_change(request=request, organization=bot.organization, action=AuditAction.OBJECT_CREATED,
                         target=f"bot {bot.pk}")  # fmt: skip
        return Response(BotSerializer(bot).data, status=status.HTTP_201_CREATED)


class BotDetailView(APIView):
    @extend_schema(responses=BotSerializer)
    def get(self, request: Request, public_id: str) -> Response:
        return Response(BotSerializer(bot_for_request(request, public_id)).data)

    @extend_schema(request=BotSerializer, responses=BotSerializer)
    def put(self, request: Request, public_id: str) -> Response:
        """Change a bot: ``name`` is required; settings left out keep their values, as with PATCH."""
        return self._update(request, public_id, partial=False)

    @extend_schema(request=BotSerializer, responses=BotSerializer)
    def patch(self, request: Request, public_id: str) -> Response:
        return self._update(request, public_id, partial=True)

    def _update(self, request: Request, public_id: str, *, partial: bool) -> Response:
        bot = bot_for_request(request, public_id)
        require_writer(request, what="bots")
        payload = BotSerializer(bot, data=request.data, partial=partial)
        payload.is_valid(raise_exception=True)
        data, api_key, fallback_api_key = payload.split()
        bot = bot_update(bot=bot, data=data, api_key=api_key, fallback_api_key=fallback_api_key)
        audit_api_change(request=request, organization=bot.organization, action=AuditAction.OBJECT_CHANGED,
                         target=f"bot {bot.pk}")  # fmt: skip
        return Response(BotSerializer(bot).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, public_id: str) -> Response:
        bot = bot_for_request(request, public_id)
        require_writer(request, what="bots")
        audit_api_change(request=request, organization=bot.organization, action=AuditAction.OBJECT_DELETED,
                         target=f"bot {bot.pk}")  # fmt: skip
        bot_delete(bot=bot)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BotTestConnectionView(APIView):
    @extend_schema(request=None, responses=ConnectionReportSerializer(many=True))
    def post(self, request: Request, public_id: str) -> Response:
        bot = bot_for_request(request, public_id)
        require_writer(request, what="bots")
        reports = bot_test_connection(bot=bot)
        return Response(ConnectionReportSerializer(reports, many=True).data)


def sources_for_request(request: Request) -> QuerySet[Source]:
    """The knowledge sources the caller may see (a key limited to certain bots: only theirs)."""
    sources = Source.objects.filter(organization=request_organization(request))
    api_key = request_api_key(request)
    return sources_for_api_key(api_key=api_key, sources=sources) if api_key is not None else sources


class BotSourcesInput(InputSerializer):
    source_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=100
    )


class BotSourcesSerializer(serializers.Serializer):
    bot = serializers.CharField(help_text="The bot's public id.")
    source_ids = serializers.ListField(
        child=serializers.IntegerField(), help_text="The sources it answers from."
    )


def _bot_sources(bot: Bot) -> Response:
    return Response(BotSourcesSerializer({"bot": bot.public_id, "source_ids": bot_source_ids(bot=bot)}).data)


class BotSourceListView(APIView):
    """The knowledge a bot answers from: GET lists it, POST attaches sources (``{"source_ids": [...]}``)."""

    @extend_schema(responses=BotSourcesSerializer)
    def get(self, request: Request, public_id: str) -> Response:
        return _bot_sources(bot_for_request(request, public_id))

    @extend_schema(request=BotSourcesInput, responses=BotSourcesSerializer)
    def post(self, request: Request, public_id: str) -> Response:
        bot = bot_for_request(request, public_id)
        require_writer(request, what="bots")
        payload = BotSourcesInput(data=request.data)
        payload.is_valid(raise_exception=True)
        wanted = set(payload.validated_data["source_ids"])
        sources = list(sources_for_request(request).filter(pk__in=wanted))
        unknown = sorted(wanted - {source.pk for source in sources})
        if unknown:
            raise serializers.ValidationError(
                {"source_ids": [f"No such source: {', '.join(map(str, unknown))}."]}
            )
        bot_sources_add(bot=bot, sources=sources)
        return _bot_sources(bot)


class BotSourceDetailView(APIView):
    """DELETE /api/v1/bots/<public_id>/sources/<source_id>/: detach a source (the source stays)."""

    @extend_schema(responses={204: None})
    def delete(self, request: Request, public_id: str, source_id: int) -> Response:
        bot = bot_for_request(request, public_id)
        require_writer(request, what="bots")
        source = sources_for_request(request).filter(pk=source_id, bots=bot).first()
        if source is None:
            raise NotFound("This bot does not use such a source.")
        bot_source_remove(bot=bot, source=source)
        return Response(status=status.HTTP_204_NO_CONTENT)
