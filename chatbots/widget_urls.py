"""Public widget URLs, included at the site root by config/urls.py."""

from __future__ import annotations

from django.urls import path

from chatbots import widget_views

urlpatterns = [
    path("widget.js", widget_views.widget_loader, name="widget-loader"),
    path("widget/<str:public_id>/config.json", widget_views.widget_config, name="widget-config"),
    path("widget/<str:public_id>/", widget_views.widget_frame, name="widget-frame"),
    path("chat/<str:public_id>/", widget_views.chat_page, name="chat-page"),
]
