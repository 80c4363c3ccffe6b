"""Fixed-window rate limits in Redis, shared by every web process.

A window counter (INCR + EXPIRE in one round trip) is enough here: limits protect bots and budgets, and the
worst case of a fixed window (2x the rate across a window edge) is acceptable for that.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass

import redis.asyncio as aioredis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chatbots.exceptions import RateLimited

logger = logging.getLogger(__name__)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
REDIS_MAX_CONNECTIONS = 64
REDIS_POOL_TIMEOUT_SECONDS = 20
_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "day": 86400,
}


@dataclass(frozen=True)
class Rate:
    limit: int
    window_seconds: int


def parse_rate(value: str) -> Rate | None:
    """'20/min', '100/h', '5/10s'; empty or '0' disables the limit."""
    value = value.strip().lower()
    if value in ("", "0", "off", "none"):
        return None
    try:
        count, per = value.split("/")
        digits = "".join(ch for ch in per if ch.isdigit()) or "1"
        unit = per[len(digits) :] if per[: len(digits)] == digits else per
        return Rate(int(count), int(digits) * _UNITS[unit])
    except (ValueError, KeyError):
        raise ImproperlyConfigured(f"Bad rate {value!r}: use e.g. '20/min', '100/h' or '5/10s'") from None


def redis_client() -> aioredis.Redis:
    """One asyncio Redis client per event loop (clients cannot cross loops)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        # A blocking pool waits for a free connection under load instead of failing the request
        # (1,000 simultaneous answers exhausted a plain pool: bench/chat_load.py).
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=REDIS_MAX_CONNECTIONS, timeout=REDIS_POOL_TIMEOUT_SECONDS
        )
        client = aioredis.Redis(connection_pool=pool)
        _clients[loop] = client
    return client


async def check_rate_limits(limits: list[tuple[str, str]]) -> None:
    """Count one hit against each (key, rate); raise RateLimited with the longest wait if any is exceeded."""
    active = [(key, rate) for key, raw in limits if (rate := parse_rate(raw))]
    if not active:
        return
    now = int(time.time())
    pipe = redis_client().pipeline(transaction=False)
    windows = []
    for key, rate in active:
        window = now // rate.window_seconds
        redis_key = f"parlor:rl:{key}:{rate.window_seconds}:{window}"
        pipe.incr(redis_key)
        pipe.expire(redis_key, rate.window_seconds + 1)
        windows.append((rate, window))
    results = await pipe.execute()
    retry_after = 0
    for (rate, window), count in zip(windows, results[::2], strict=True):
        if count > rate.limit:
            retry_after = max(retry_after, (window + 1) * rate.window_seconds - now)
    if retry_after:
        raise RateLimited(
            f"You are sending messages too quickly. Please try again in {retry_after} seconds.",
            retry_after=max(1, retry_after),
        )


async def acquire_conversation_slot(conversation_id: str, ttl_seconds: int) -> bool:
    """One answer at a time per conversation, across processes; the TTL frees it if a process dies."""
    return bool(await redis_client().set(f"parlor:busy:{conversation_id}", "1", nx=True, ex=ttl_seconds))


async def release_conversation_slot(conversation_id: str) -> None:
    """Free the conversation for its next message; if Redis is unreachable the slot's TTL frees it."""
    try:
        await redis_client().delete(f"parlor:busy:{conversation_id}")
    except aioredis.RedisError:
        logger.warning("could not release the answer slot of conversation %s", conversation_id, exc_info=True)
