"""WebSocket routes of every app, gathered in one place for config/asgi.py."""

from __future__ import annotations

from django.urls import path

from chatbots.routing import websocket_urlpatterns as chat_websockets
from config.consumers import EchoConsumer

websocket_urlpatterns = [
    path("ws/echo/", EchoConsumer.as_asgi()),
    *chat_websockets,
]
