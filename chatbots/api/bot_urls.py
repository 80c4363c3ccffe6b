from __future__ import annotations

from django.urls import path

from chatbots.api import bot_views

urlpatterns = [
    path("bots/", bot_views.BotListView.as_view(), name="api-bots"),
    path("bots/<str:public_id>/", bot_views.BotDetailView.as_view(), name="api-bot"),
    path(
        "bots/<str:public_id>/test-connection/",
        bot_views.BotTestConnectionView.as_view(),
        name="api-bot-test-connection",
    ),
]
