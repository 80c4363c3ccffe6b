"""The management API: bots, and — with the bots they concern — the organization, API keys and knowledge
sources (accounts and knowledge know no bots; ``api_key_views`` and ``source_views`` extend their views)."""

from __future__ import annotations

from django.urls import path

from chatbots.api import api_key_views, bot_views, source_views

urlpatterns = [
    path("organization/", api_key_views.OrganizationView.as_view(), name="api-organization"),
    path("api-keys/", api_key_views.ApiKeyListView.as_view(), name="api-api-keys"),
    path(
        "api-keys/<str:prefix>/revoke/", api_key_views.ApiKeyRevokeView.as_view(), name="api-api-key-revoke"
    ),
    path("bots/", bot_views.BotListView.as_view(), name="api-bots"),
    path("bots/<str:public_id>/", bot_views.BotDetailView.as_view(), name="api-bot"),
    path("bots/<str:public_id>/sources/", bot_views.BotSourceListView.as_view(), name="api-bot-sources"),
    path(
        "bots/<str:public_id>/sources/<int:source_id>/",
        bot_views.BotSourceDetailView.as_view(),
        name="api-bot-source",
    ),
    path(
        "bots/<str:public_id>/test-connection/",
        bot_views.BotTestConnectionView.as_view(),
        name="api-bot-test-connection",
    ),
    path("sources/", source_views.SourceListView.as_view(), name="api-sources"),
    path("sources/<int:source_id>/", source_views.SourceDetailView.as_view(), name="api-source"),
    path(
        "sources/<int:source_id>/resync/", source_views.SourceResyncView.as_view(), name="api-source-resync"
    ),
]
