from __future__ import annotations

from django.urls import path

from knowledge.api import views

urlpatterns = [
    path("sources/", views.SourceListView.as_view(), name="api-sources"),
    path("sources/<int:source_id>/", views.SourceDetailView.as_view(), name="api-source"),
    path("sources/<int:source_id>/resync/", views.SourceResyncView.as_view(), name="api-source-resync"),
]
