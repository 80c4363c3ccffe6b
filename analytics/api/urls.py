"""The analytics API (mounted under /api/v1/ by config.urls)."""

from __future__ import annotations

from django.urls import path

from analytics.api import views

urlpatterns = [
    path("analytics/summary/", views.AnalyticsSummaryView.as_view(), name="api-analytics-summary"),
    path("analytics/series/", views.AnalyticsSeriesView.as_view(), name="api-analytics-series"),
]
