from __future__ import annotations

from django.urls import re_path

from chatbots.consumers import ChatConsumer

websocket_urlpatterns = [
    re_path(r"^ws/chat/(?P<public_id>[A-Za-z0-9_-]{4,40})/$", ChatConsumer.as_asgi()),
]
