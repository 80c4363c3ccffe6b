"""WebSocket routes of every app, gathered in one place for config/asgi.py."""

from __future__ import annotations

from chatbots.routing import websocket_urlpatterns as chat_websockets

websocket_urlpatterns = [
    *chat_websockets,
]

# Sockets opened from other sites by design: the widget's chat socket, embedded on customers' pages.
# Their consumer checks the Origin against the bot's allowed origins; every other socket must be
# same-origin (config/websocket_edge.py).
CROSS_ORIGIN_SOCKET_PATHS = ("/ws/chat/",)
