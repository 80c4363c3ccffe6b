"""Bots API: list, create, read, change and delete bots, and test their provider connection.

Session users act in their active organization (owners and admins write); API keys act in theirs, limited
to the key's bots, and read-only keys only read. Another organization's bot is simply not found.
"""

from __future__ import annotations

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
from chatbots.api.access import bots_for_request, require_unlimited_writer
from chatbots.api.bot_serializers import BotSerializer, ConnectionReportSerializer
from chatbots.models import Bot
from chatbots.services import bot_create, bot_delete, bot_test_connection, bot_update


def bot_for_request(request: Request, public_id: str) -> Bot:
    bot = bots_for_request(request).filter(public_id=public_id).first()
    if bot is None:
        raise NotFound("No such bot.")
    return bot


class BotListView(APIView):
    @extend_schema(responses=BotSerializer(many=True))
    def get(self, request: Request) -> Response:
        paginator = api_settings.DEFAULT_PAGINATION_CLASS()
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
    def patch(self, request: Request, public_id: str) -> Response:
        bot = bot_for_request(request, public_id)
        require_writer(request, what="bots")
        payload = BotSerializer(bot, data=request.data, partial=True)
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
