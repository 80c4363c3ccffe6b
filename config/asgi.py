"""ASGI entry point: Django for HTTP, Channels for WebSocket (served by Daphne)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.sessions import CookieMiddleware  # noqa: E402

from analytics.metrics import WebSocketMetricsMiddleware  # noqa: E402
from config.routing import CROSS_ORIGIN_SOCKET_PATHS, websocket_urlpatterns  # noqa: E402
from config.websocket_edge import WebSocketEdge  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Host and Origin are checked before anything else runs (Django's checks do not cover sockets);
        # the metrics wrap even that, so refused sockets are counted too.
        "websocket": WebSocketMetricsMiddleware(
            WebSocketEdge(
                CookieMiddleware(URLRouter(websocket_urlpatterns)),
                cross_origin_paths=CROSS_ORIGIN_SOCKET_PATHS,
            )
        ),
    }
)
