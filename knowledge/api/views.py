"""Knowledge sources API: add files, pages, websites, text and FAQs, watch them being processed, re-sync,
change and delete them.

Sources belong to the caller's organization; another organization's source is not found. Knowledge knows
no bots: ``chatbots/api/source_views.py`` extends these views with the bots that answer from a source
(and with API keys limited to certain bots), and the URLs route there. It does so through
``serializer_class``, ``get_sources``, ``require_writer`` and ``save_relations``.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.api.scope import request_organization, require_writer
from knowledge.api.serializers import SourceSerializer
from knowledge.models import Source, SourceKind, SourceStatus
from knowledge.services import source_create, source_delete, source_request_ingest, source_update

WHAT = "knowledge sources"

LIST_FILTERS = [
    OpenApiParameter("kind", str, enum=SourceKind.values),
    OpenApiParameter("status", str, enum=SourceStatus.values),
]


class SourceAPIView(APIView):
    # What the source endpoints share, and the hooks a subclass extends. (No docstring: the OpenAPI
    # document would show it as the description of every source operation.)

    serializer_class: type[SourceSerializer] = SourceSerializer

    def get_sources(self) -> QuerySet[Source]:
        """The sources the caller may see."""
        organization = request_organization(self.request)
        return Source.objects.filter(organization=organization).prefetch_related("faq_pairs")

    def get_source(self, source_id: int) -> Source:
        source = self.get_sources().filter(pk=source_id).first()
        if source is None:
            raise NotFound("No such source.")
        return source

    def require_writer(self) -> None:
        require_writer(self.request, what=WHAT)

    def pop_relations(self, data: dict[str, Any]) -> dict[str, Any]:
        """Take what is not the source's own out of validated ``data`` (a subclass's fields, nothing
        here); it comes back to ``save_relations`` once the source is saved."""
        return {}

    def save_relations(self, source: Source, relations: dict[str, Any]) -> None:
        """Store what ``pop_relations`` took (in the transaction that saves the source)."""

    def respond(self, source_id: int, status_code: int = status.HTTP_200_OK) -> Response:
        return Response(self.serializer_class(self.get_source(source_id)).data, status=status_code)


class SourceListView(SourceAPIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    def filter_list(self, sources: QuerySet[Source]) -> QuerySet[Source]:
        for name in ("kind", "status"):
            if value := self.request.query_params.get(name):
                sources = sources.filter(**{name: value})
        return sources

    @extend_schema(parameters=LIST_FILTERS, responses=SourceSerializer(many=True))
    def get(self, request: Request) -> Response:
        sources = self.filter_list(self.get_sources()).order_by("-created_at", "-pk")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(sources, request, view=self)
        return paginator.get_paginated_response(self.serializer_class(page, many=True).data)

    @extend_schema(request=SourceSerializer, responses={201: SourceSerializer})
    def post(self, request: Request) -> Response:
        """Add a source; it is queued for ingestion at once (watch ``status`` and ``progress``)."""
        self.require_writer()
        payload = self.serializer_class(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        relations = self.pop_relations(data)
        with transaction.atomic():
            source = source_create(organization=request_organization(request), **data)
            self.save_relations(source, relations)
        return self.respond(source.pk, status.HTTP_201_CREATED)


class SourceDetailView(SourceAPIView):
    @extend_schema(responses=SourceSerializer)
    def get(self, request: Request, source_id: int) -> Response:
        return self.respond(source_id)

    @extend_schema(request=SourceSerializer, responses=SourceSerializer)
    def patch(self, request: Request, source_id: int) -> Response:
        """Change a source; a new file, address, text, crawl limit or FAQ list re-ingests it."""
        source = self.get_source(source_id)
        self.require_writer()
        payload = self.serializer_class(source, data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        relations = self.pop_relations(data)
        faq_pairs = data.pop("faq_pairs", None)
        with transaction.atomic():
            source = source_update(source=source, data=data, faq_pairs=faq_pairs)
            self.save_relations(source, relations)
        return self.respond(source.pk)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, source_id: int) -> Response:
        """Delete a source with its chunks, FAQ pairs and file."""
        source = self.get_source(source_id)
        self.require_writer()
        source_delete(source=source)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourceResyncView(SourceAPIView):
    @extend_schema(request=None, responses={202: SourceSerializer})
    def post(self, request: Request, source_id: int) -> Response:
        """Process the source again now (re-fetches URL and website sources; unchanged pages keep their
        vectors)."""
        source = self.get_source(source_id)
        self.require_writer()
        source_request_ingest(source=source)
        # What this request did (queued), not what a fast worker may already be doing with it.
        return Response(self.serializer_class(source).data, status=status.HTTP_202_ACCEPTED)
