"""Knowledge sources API: add files, pages, websites, text and FAQs, watch them being processed, re-sync,
change and delete them, and choose the bots that answer from them.

Sources belong to the caller's organization; API keys limited to certain bots see the sources of those
bots and cannot change knowledge (it may serve other bots). Another organization's source is not found.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.api.scope import request_api_key, request_organization, require_writer
from chatbots.models import Bot
from knowledge.api.serializers import SourceSerializer
from knowledge.models import Source, SourceKind, SourceStatus
from knowledge.services import source_create, source_delete, source_request_ingest, source_update

WHAT = "knowledge sources"


def sources_for_request(request: Request) -> QuerySet[Source]:
    """The sources the caller may see: its organization's, narrowed to an API key's bots."""
    sources = Source.objects.filter(organization=request_organization(request))
    api_key = request_api_key(request)
    if api_key is not None and api_key.bot_ids:
        sources = sources.filter(bots__in=api_key.bot_ids).distinct()
    return sources.prefetch_related("bots", "faq_pairs").order_by("-created_at", "-pk")


def source_for_request(request: Request, source_id: int) -> Source:
    source = sources_for_request(request).filter(pk=source_id).first()
    if source is None:
        raise NotFound("No such source.")
    return source


def _bots(request: Request, public_ids: list[str]) -> list[Bot]:
    """The organization's bots with these public ids; an unknown id is a 400 naming it."""
    wanted = list(dict.fromkeys(public_ids))
    found = {
        bot.public_id: bot
        for bot in Bot.objects.filter(organization=request_organization(request), public_id__in=wanted)
    }
    unknown = [public_id for public_id in wanted if public_id not in found]
    if unknown:
        raise serializers.ValidationError({"bots": [f"No such bot: {', '.join(unknown)}."]})
    return [found[public_id] for public_id in wanted]


LIST_FILTERS = [
    OpenApiParameter("kind", str, enum=SourceKind.values),
    OpenApiParameter("status", str, enum=SourceStatus.values),
    OpenApiParameter("bot", str, description="A bot's public id: only the sources it answers from."),
]


class SourceListView(APIView):
    @extend_schema(parameters=LIST_FILTERS, responses=SourceSerializer(many=True))
    def get(self, request: Request) -> Response:
        sources = sources_for_request(request)
        for name in ("kind", "status"):
            if value := request.query_params.get(name):
                sources = sources.filter(**{name: value})
        if bot := request.query_params.get("bot"):
            sources = sources.filter(bots__public_id=bot)
        paginator = api_settings.DEFAULT_PAGINATION_CLASS()
        page = paginator.paginate_queryset(sources, request, view=self)
        return paginator.get_paginated_response(SourceSerializer(page, many=True).data)

    @extend_schema(request=SourceSerializer, responses={201: SourceSerializer})
    def post(self, request: Request) -> Response:
        """Add a source; it is queued for ingestion at once (watch ``status`` and ``progress``)."""
        require_writer(request, what=WHAT, bot_limited_keys=False)
        payload = SourceSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        bots = _bots(request, data.pop("bots", []))
        source = source_create(organization=request_organization(request), bots=bots, **data)
        return Response(SourceSerializer(source).data, status=status.HTTP_201_CREATED)


class SourceDetailView(APIView):
    @extend_schema(responses=SourceSerializer)
    def get(self, request: Request, source_id: int) -> Response:
        return Response(SourceSerializer(source_for_request(request, source_id)).data)

    @extend_schema(request=SourceSerializer, responses=SourceSerializer)
    def patch(self, request: Request, source_id: int) -> Response:
        """Change a source; a new file, address, text, crawl limit or FAQ list re-ingests it."""
        source = source_for_request(request, source_id)
        require_writer(request, what=WHAT, bot_limited_keys=False)
        payload = SourceSerializer(source, data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        faq_pairs = data.pop("faq_pairs", None)
        bots = _bots(request, data.pop("bots")) if "bots" in data else None
        source = source_update(source=source, data=data, faq_pairs=faq_pairs, bots=bots)
        return Response(SourceSerializer(source_for_request(request, source.pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, source_id: int) -> Response:
        """Delete a source with its chunks, FAQ pairs and file."""
        source = source_for_request(request, source_id)
        require_writer(request, what=WHAT, bot_limited_keys=False)
        source_delete(source=source)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourceResyncView(APIView):
    @extend_schema(request=None, responses={202: SourceSerializer})
    def post(self, request: Request, source_id: int) -> Response:
        """Process the source again now (re-fetches URL and website sources; unchanged pages keep their
        vectors)."""
        source = source_for_request(request, source_id)
        require_writer(request, what=WHAT, bot_limited_keys=False)
        source_request_ingest(source=source)
        return Response(
            SourceSerializer(source_for_request(request, source.pk)).data, status=status.HTTP_202_ACCEPTED
        )
