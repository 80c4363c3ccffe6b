"""Which websites may embed a bot or open its chat socket (one rule for the CSP, the config and the socket)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings

from chatbots.models import Bot

_ORIGIN_RE = re.compile(r"^https?://(\*\.)?[a-z0-9.-]+(:\d{1,5})?$")


def normalize_origin(value: str) -> str:
    """'https://Example.com/' -> 'https://example.com' (scheme://host[:port], what browsers send)."""
    value = (value or "").strip().rstrip("/").lower()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    default_port = {"http": ":80", "https": ":443"}[parts.scheme]
    netloc = parts.netloc.removesuffix(default_port)
    return f"{parts.scheme}://{netloc}"


def allowed_origins(bot: Bot) -> list[str]:
    """The bot's allowed origins, normalized; invalid entries are dropped (they could break the CSP)."""
    origins = []
    for raw in bot.allowed_origins or []:
        if raw.strip() == "*":  # explicitly open to every site, as an empty list
            return ["*"]
        origin = normalize_origin(raw) if "*" not in raw else raw.strip().rstrip("/").lower()
        if origin and _ORIGIN_RE.match(origin):
            origins.append(origin)
    return origins


def origin_allowed(bot: Bot, origin: str | None) -> bool:
    """True if a page on ``origin`` may embed the bot. An empty list means any site may embed it."""
    origins = allowed_origins(bot)
    if not origins or "*" in origins:
        return True
    origin = normalize_origin(origin or "")
    if not origin:
        return False
    for allowed in origins:
        if allowed == origin:
            return True
        if "*." in allowed:  # https://*.example.com matches sub.example.com, not example.com
            scheme, _, host = allowed.partition("://*.")
            if origin.startswith(scheme + "://") and origin.split("://", 1)[1].endswith("." + host):
                return True
    return False


def socket_origin_allowed(*, bot: Bot, origin: str | None, host: str | None = None) -> bool:
    """A chat socket may come from Parlor's own pages (the widget iframe, the chat page), from a
    non-browser client (no Origin header), or from a site the bot may be embedded on."""
    if not origin:
        return True
    normalized = normalize_origin(origin)
    own = {normalize_origin(settings.SITE_URL)}
    if host:
        own |= {normalize_origin(f"http://{host}"), normalize_origin(f"https://{host}")}
    return normalized in own or origin_allowed(bot, normalized)
