from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from analytics import metrics
from chatbots.api import openai_protocol, openai_views
from config import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("api/v1/", include("chatbots.api.urls")),
    path("api/v1/", include("chatbots.api.bot_urls")),
    path("api/v1/", include("analytics.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file, so the CSP needs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("v1/chat/completions", openai_views.chat_completions, name="openai-chat-completions"),
    path("v1/responses", openai_views.responses_create, name="openai-responses"),
    path("v1/models", openai_views.models_list, name="openai-models"),
    path("v1/models/<str:model>", openai_views.model_detail, name="openai-model"),
    re_path(r"^v1/(?P<path>.*)$", openai_protocol.not_found, name="openai-not-found"),
    path("", include("chatbots.widget_urls")),
]
