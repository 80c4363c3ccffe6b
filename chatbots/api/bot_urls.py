"""The management API: bots, and — with the bots they concern — the organization, API keys, knowledge
sources and webhook endpoints (accounts, knowledge and webhooks know no bots; ``api_key_views``,
``source_views`` and ``webhook_views`` extend their views)."""

from __future__ import annotations

from django.urls import path

from chatbots.api import api_key_views, bot_views, source_views, webhook_views

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
    path("webhook-endpoints/", webhook_views.WebhookEndpointListView.as_view(), name="api-webhook-endpoints"),
    path(
        "webhook-endpoints/<int:endpoint_id>/",
        webhook_views.WebhookEndpointDetailView.as_view(),
        name="api-webhook-endpoint",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/rotate-secret/",
        webhook_views.WebhookEndpointRotateSecretView.as_view(),
        name="api-webhook-endpoint-rotate-secret",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/test/",
        webhook_views.WebhookEndpointTestView.as_view(),
        name="api-webhook-endpoint-test",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/deliveries/",
        webhook_views.WebhookDeliveryListView.as_view(),
        name="api-webhook-deliveries",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver/",
        webhook_views.WebhookRedeliverView.as_view(),
        name="api-webhook-redeliver",
    ),
]
