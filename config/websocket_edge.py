"""The WebSocket edge: which Host every socket may name, and which Origin a socket may come from.

Django checks the Host of HTTP requests against ``ALLOWED_HOSTS`` and CSRF checks their Origin; sockets
bypass both, so this middleware does it for them before any consumer runs (channels'
``AllowedHostsOriginValidator``, adapted):

* every socket must name an allowed Host (a missing one is refused: servers always send it);
* a socket is same-origin (Origin's host and port equal its Host, or the Origin is listed in
  ``CSRF_TRUSTED_ORIGINS``) unless its path is cross-origin by design: the widget's chat socket is opened
  from customers' sites, and its consumer checks the Origin against the bot's allowed origins
  (chatbots/origins.py). A socket without an Origin is refused unless cross-origin by design.

Each socket also gets a request id for the logs (the handshake's ``X-Request-ID`` when well-formed), bound for
the life of the connection (config/log_context.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from config import log_context

DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def host_allowed(host: str | None) -> bool:
    """Django's own rule for the Host header (as ``HttpRequest.get_host``)."""
    if not host:
        return False
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


def _netloc(scheme: str, netloc: str) -> str:
    """``host[:port]`` in lower case, without the scheme's default port."""
    netloc = netloc.lower()
    default = DEFAULT_PORTS.get(scheme)
    return netloc.removesuffix(f":{default}") if default else netloc


def same_origin(origin: str | None, host: str) -> bool:
    if not origin:
        return False
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (sandboxed frames, file://) included
    netloc = _netloc(parts.scheme, parts.netloc)
    trusted = {o.strip().rstrip("/").lower() for o in settings.CSRF_TRUSTED_ORIGINS}
    # The scheme is not compared: behind a TLS-terminating proxy the socket itself arrives as ws://.
    return netloc in (_netloc(parts.scheme, host), host.lower()) or f"{parts.scheme}://{netloc}" in trusted


class WebSocketEdge:
    """ASGI middleware for the ``websocket`` protocol (see the module docstring)."""

    def __init__(self, app: Any, *, cross_origin_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.cross_origin_paths = cross_origin_paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            log_context.clear()
            request_id = log_context.valid_request_id(_header(scope, b"x-request-id"))
            log_context.bind(request_id=request_id or log_context.new_request_id())
            host = _header(scope, b"host")
            cross_origin = scope["path"].startswith(self.cross_origin_paths)
            if not host_allowed(host) or not (cross_origin or same_origin(_header(scope, b"origin"), host)):
                return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)
