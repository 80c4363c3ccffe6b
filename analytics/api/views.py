"""Analytics API: the figures of a date range (with the period before it) and per day.

Session users see their active organization's bots; an API key the bots it may use. A bot of another
organization is simply not found, and figures only ever come from the caller's organization's rows.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.scope import request_organization
from analytics.api.serializers import AnalyticsQuerySerializer, SeriesSerializer, SummarySerializer
from analytics.selectors import DateRange, analytics_series, analytics_summary
from chatbots.api.access import bots_for_request


def analytics_scope(request: Request) -> tuple[int, DateRange, list[int]]:
    """The caller's organization, the range asked for and the bots (all it may see, or those named)."""
    query = AnalyticsQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    date_range = DateRange.of(
        start=query.validated_data.get("start"),
        end=query.validated_data.get("end"),
        today=timezone.now().date(),
    )
    bots = bots_for_request(request)
    wanted = set(query.validated_data.get("bot") or ())
    if wanted:
        bots = bots.filter(public_id__in=wanted)
    bot_ids = list(bots.values_list("pk", flat=True))
    if wanted and len(bot_ids) != len(wanted):
        raise NotFound("No such bot.")
    return request_organization(request).pk, date_range, bot_ids


class AnalyticsSummaryView(APIView):
    @extend_schema(parameters=[AnalyticsQuerySerializer], responses=SummarySerializer)
    def get(self, request: Request) -> Response:
        organization_id, date_range, bot_ids = analytics_scope(request)
        summary = analytics_summary(organization_id=organization_id, date_range=date_range, bot_ids=bot_ids)
        return Response(SummarySerializer(summary).data)


class AnalyticsSeriesView(APIView):
    @extend_schema(parameters=[AnalyticsQuerySerializer], responses=SeriesSerializer)
    def get(self, request: Request) -> Response:
        organization_id, date_range, bot_ids = analytics_scope(request)
        days = analytics_series(organization_id=organization_id, date_range=date_range, bot_ids=bot_ids)
        return Response(
            SeriesSerializer({"start": date_range.start, "end": date_range.end, "days": days}).data
        )
