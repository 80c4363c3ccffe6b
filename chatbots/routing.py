from __future__ import annotations

from channels.auth import AuthMiddleware
from channels.sessions import SessionMiddleware
from django.urls import re_path

from chatbots.consumers import ChatConsumer
from chatbots.operator_consumer import OperatorInboxConsumer

websocket_urlpatterns = [
    re_path(r"^ws/chat/(?P<public_id>[A-Za-z0-9_-]{4,40})/$", ChatConsumer.as_asgi()),
    # The admin's socket: the admin session's user (cookies are parsed for every socket in config/asgi.py).
    re_path(r"^ws/admin/inbox/$", SessionMiddleware(AuthMiddleware(OperatorInboxConsumer.as_asgi()))),
]
