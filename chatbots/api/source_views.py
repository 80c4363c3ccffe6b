"""The knowledge sources API with the bots that answer from each source.

Knowledge knows no bots, so these views extend its views (``knowledge/api/views.py``) and the URLs route
here: a source's ``bots`` (public ids, read and written), the ``?bot=`` filter, and API keys limited to
certain bots, which see only their bots' sources and cannot change knowledge (it may serve other bots).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.scope import request_api_key, request_organization
from accounts.audit import audit_api_change
from accounts.models import AuditAction
from chatbots.api.access import require_unlimited_writer
from chatbots.selectors import bots_by_public_ids, sources_for_api_key
from chatbots.services import source_set_bots
from knowledge.api import views as knowledge_views
from knowledge.api.serializers import SourceSerializer
from knowledge.models import Source


class BotPublicIds(serializers.ListField):
    """Written as a list of bot public ids; read from the source's bots."""

    def to_representation(self, bots: Any) -> list[str]:
        return sorted(bot.public_id for bot in bots.all())


@extend_schema_serializer(component_name="Source")
class SourceWithBotsSerializer(SourceSerializer):
    """A source, its ingestion status and the bots that answer from it."""

    bots = BotPublicIds(
        child=serializers.CharField(max_length=40), required=False,
        help_text="Public ids of the bots that answer from this source (of your organization).",
    )  # fmt: skip

    class Meta(SourceSerializer.Meta):
        fields = [*SourceSerializer.Meta.fields, "bots"]


class SourceBotsMixin(knowledge_views.SourceAPIView):
    serializer_class = SourceWithBotsSerializer

    def get_sources(self) -> QuerySet[Source]:
        sources = super().get_sources().prefetch_related("bots")
        api_key = request_api_key(self.request)
        return sources_for_api_key(api_key=api_key, sources=sources) if api_key is not None else sources

    def require_writer(self) -> None:
        require_unlimited_writer(self.request, what=knowledge_views.WHAT)

    def pop_relations(self, data: dict[str, Any]) -> dict[str, Any]:
        if "bots" not in data:
            return {}
        organization = request_organization(self.request)
        bots, unknown = bots_by_public_ids(organization_id=organization.pk, public_ids=data.pop("bots"))
        if unknown:
            raise serializers.ValidationError({"bots": [f"No such bot: {', '.join(unknown)}."]})
        return {"bots": bots}

    def save_relations(self, source: Source, relations: dict[str, Any]) -> None:
        if "bots" in relations:
            source_set_bots(source=source, bots=relations["bots"])


def _audit(request: Request, response: Response, action: str, source_id: Any) -> None:
    if response.status_code < 400:
        audit_api_change(request=request, organization=request_organization(request), action=action,
                         target=f"source {source_id}")  # fmt: skip


class SourceListView(SourceBotsMixin, knowledge_views.SourceListView):
    def filter_list(self, sources: QuerySet[Source]) -> QuerySet[Source]:
        sources = super().filter_list(sources)
        if bot := self.request.query_params.get("bot"):
            sources = sources.filter(bots__public_id=bot)
        return sources

    @extend_schema(
        parameters=[
            *knowledge_views.LIST_FILTERS,
            OpenApiParameter("bot", str, description="A bot's public id: only the sources it answers from."),
        ],
        responses=SourceWithBotsSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        return super().get(request)

    @extend_schema(request=SourceWithBotsSerializer, responses={201: SourceWithBotsSerializer})
    def post(self, request: Request) -> Response:
        """Add a source; it is queued for ingestion at once (watch ``status`` and ``progress``)."""
        response = super().post(request)
        _audit(request, response, AuditAction.OBJECT_CREATED, response.data.get("id"))
        return response


class SourceDetailView(SourceBotsMixin, knowledge_views.SourceDetailView):
    @extend_schema(responses=SourceWithBotsSerializer)
    def get(self, request: Request, source_id: int) -> Response:
        return super().get(request, source_id)

    @extend_schema(request=SourceWithBotsSerializer, responses=SourceWithBotsSerializer)
    def patch(self, request: Request, source_id: int) -> Response:
        """Change a source; a new file, address, text, crawl limit or FAQ list re-ingests it."""
        response = super().patch(request, source_id)
        _audit(request, response, AuditAction.OBJECT_CHANGED, source_id)
        return response

    @extend_schema(responses={204: None})
    def delete(self, request: Request, source_id: int) -> Response:
        """Delete a source with its chunks, FAQ pairs and file."""
        response = super().delete(request, source_id)
        _audit(request, response, AuditAction.OBJECT_DELETED, source_id)
        return response


class SourceResyncView(SourceBotsMixin, knowledge_views.SourceResyncView):
    @extend_schema(request=None, responses={202: SourceWithBotsSerializer})
    def post(self, request: Request, source_id: int) -> Response:
        """Process the source again now (re-fetches URL and website sources; unchanged pages keep their
        vectors)."""
        return super().post(request, source_id)
