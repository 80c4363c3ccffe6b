"""Which websites may embed a bot or open its chat socket (one rule for the CSP, the config and the socket).

A bot's ``allowed_origins`` is a list of entries. One function, :func:`parse_origin`, decides what an
entry means, both when the bot is saved (an entry it refuses is a validation error) and at runtime (an
entry it refuses matches nothing). An empty list means any site may embed the bot, as does the entry
``"*"``; a list whose entries are all unusable (stored before they were checked) allows no site.
Websites that were refused are remembered for a while (``refused_origin_record``) for the bot's page.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from chatbots.models import Bot
from config.redis_clients import sync_redis_client

logger = logging.getLogger(__name__)

ANY_SITE = "*"

# scheme://host[:port] as browsers send it in the Origin header, optionally with "*." for any subdomain.
# Hosts are limited to what a CSP host-source can express (letters, digits, "-" and dots), so every
# accepted entry is safe to put into the frame-ancestors directive as it is.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_ORIGIN_RE = re.compile(
    rf"(?P<scheme>https?)://(?P<wildcard>\*\.)?(?P<host>{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>[0-9]{{1,5}}))?"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(value: str, *, wildcard: bool = False) -> str | None:
    """``value`` in canonical form ('HTTPS://Shop.Example:443/' -> 'https://shop.example'), or None.

    Accepts exactly scheme://host[:port] (a trailing slash is forgiven): no user info, path, query,
    spaces, separators or quotes. With ``wildcard``, 'https://*.example.com' (any subdomain, not the
    domain itself) is accepted as well; a "*" anywhere else never is.
    """
    match = _ORIGIN_RE.fullmatch(str(value).strip().rstrip("/").lower())
    if match is None or (match["wildcard"] and not wildcard):
        return None
    scheme, port = match["scheme"], match["port"]
    suffix = ""
    if port is not None:
        number = int(port)
        if not 0 < number < 65536:
            return None
        suffix = "" if number == _DEFAULT_PORTS[scheme] else f":{number}"
    return f"{scheme}://{match['wildcard'] or ''}{match['host']}{suffix}"


def parse_allowed_origin(entry: str) -> str | None:
    """One ``allowed_origins`` entry in canonical form ("*", an origin or a wildcard origin), or None."""
    if str(entry).strip() == ANY_SITE:
        return ANY_SITE
    return parse_origin(entry, wildcard=True)


def normalize_origin(value: str | None) -> str:
    """An Origin header (or ``host`` parameter) in canonical form, or "" if it is not an origin."""
    return parse_origin(value or "") or ""


def _entries(bot: Bot) -> list[str]:
    return [str(entry) for entry in bot.allowed_origins or [] if str(entry).strip()]


def allowed_origins(bot: Bot) -> list[str]:
    """The bot's usable entries, canonical: ["*"] for any site; unusable entries are left out."""
    origins = [origin for origin in map(parse_allowed_origin, _entries(bot)) if origin]
    return [ANY_SITE] if ANY_SITE in origins else list(dict.fromkeys(origins))


def allows_any_site(bot: Bot) -> bool:
    # Only an empty list or an explicit "*" opens the widget to every site: a list of unusable entries
    # must not turn into "no restriction".
    return not _entries(bot) or allowed_origins(bot) == [ANY_SITE]


def frame_ancestors(bot: Bot) -> str:
    """The CSP frame-ancestors sources for the widget iframe."""
    if allows_any_site(bot):
        return "*"
    return " ".join(allowed_origins(bot)) or "'none'"


def origin_allowed(bot: Bot, origin: str | None) -> bool:
    """True if a page on ``origin`` may embed the bot."""
    if allows_any_site(bot):
        return True
    origin = normalize_origin(origin)
    if not origin:
        return False
    for allowed in allowed_origins(bot):
        if allowed == origin:
            return True
        # https://*.example.com matches sub.example.com (on the default port), not example.com
        scheme, wildcard, domain = allowed.partition("://*.")
        if wildcard and origin.startswith(f"{scheme}://") and origin.endswith(f".{domain}"):
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
    own.discard("")
    return normalized in own or origin_allowed(bot, normalized)


# --- Websites that tried to embed a bot and were refused ----------------------------------------------
# The widget's owner learns of a blocked site on the bot's page, not only from a console warning on the
# visitor's side. Kept in Redis per bot, newest first, bounded and expiring: it is a hint for the
# customer ("add the right one"), not a log. Anyone can send any Origin header, hence the bound.
REFUSED_ORIGINS_KEPT = 10
REFUSED_ORIGINS_TTL_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class RefusedOrigin:
    origin: str
    last_seen: datetime


def _refused_key(bot: Bot) -> str:
    return f"parlor:refused-origins:{bot.pk}"


def _redis() -> Any:
    return sync_redis_client(settings.REDIS_URL)


def refused_origin_record(*, bot: Bot, origin: str | None) -> None:
    """Remember that ``origin`` asked to embed ``bot`` and was refused (never fails the request)."""
    import redis

    normalized = normalize_origin(origin)
    if not normalized:
        return
    key = _refused_key(bot)
    try:
        pipe = _redis().pipeline()
        pipe.zadd(key, {normalized: time.time()})
        pipe.zremrangebyrank(key, 0, -REFUSED_ORIGINS_KEPT - 1)  # keep only the newest
        pipe.expire(key, REFUSED_ORIGINS_TTL_SECONDS)
        pipe.execute()
    except redis.RedisError:
        logger.warning("could not record the refused origin %s of bot %s", normalized, bot.pk, exc_info=True)


def refused_origins_recent(*, bot: Bot) -> list[RefusedOrigin]:
    """Websites refused recently, newest first, without those the bot allows by now."""
    import redis

    try:
        entries = _redis().zrevrange(_refused_key(bot), 0, REFUSED_ORIGINS_KEPT - 1, withscores=True)
    except redis.RedisError:
        logger.warning("could not read the refused origins of bot %s", bot.pk, exc_info=True)
        return []
    found = []
    for raw, score in entries:
        origin = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not origin_allowed(bot, origin):
            found.append(RefusedOrigin(origin=origin, last_seen=datetime.fromtimestamp(score, tz=UTC)))
    return found


def refused_origins_forget(*, bot: Bot) -> None:
    """Drop the bot's list (the bot is deleted or its visitors' data erased)."""
    import redis

    try:
        _redis().delete(_refused_key(bot))
    except redis.RedisError:
        logger.warning("could not forget the refused origins of bot %s", bot.pk, exc_info=True)
