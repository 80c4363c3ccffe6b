"""Parlor's ASGI app plus a bare Channels consumer that streams tokens with no pipeline at all.

The load benchmark runs both in one Daphne process so the chat pipeline's token rate can be compared with
the best this process could do (same server, same machine, same run).
"""

from __future__ import annotations

import json

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from config.asgi import django_asgi_app
from config.routing import websocket_urlpatterns


class BareStreamConsumer(AsyncWebsocketConsumer):
    """Answers {"type":"message","tokens":N} with N delta frames and a done frame, like the chat does."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data or "{}")
        tokens = int(frame.get("tokens", 300))
        for i in range(tokens):
            await self.send(text_data=json.dumps({"type": "delta", "text": f"tok{i} "}))
        await self.send(text_data=json.dumps({"type": "done", "message_id": 0}))


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([path("ws/bare/", BareStreamConsumer.as_asgi()), *websocket_urlpatterns]),
    }
)
