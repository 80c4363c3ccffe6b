"""Fixed-window rate limits and answer slots in Redis, shared by every web process; the pipeline's Redis client.

A window counter (INCR + EXPIRE, all limits of a message in one script and one round trip) is enough here: limits protect bots and budgets, and the
worst case of a fixed window (2x the rate across a window edge) is acceptable for that.

Redis being down never costs a visitor's message (docs/operations.md, "What happens when something fails"):
every pipeline call to Redis goes through ``redis_call``, which gives up after ``CHAT_REDIS_TIMEOUT`` and
then skips Redis for a moment instead of making every message wait for it again. Meanwhile the limits and
the answer slots are counted in this process's memory (degraded mode): a flood is still stopped, at worst
at N times the limit with N web processes, and nobody is turned away because of an infrastructure fault.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import redis.asyncio as aioredis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chatbots.exceptions import RateLimited
from config.redis_clients import redis_connection_options

logger = logging.getLogger(__name__)
T = TypeVar("T")

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
REDIS_MAX_CONNECTIONS = 64
REDIS_POOL_TIMEOUT_SECONDS = 20
REDIS_DOWN_PAUSE_SECONDS = 1.0  # after a failure, Redis is skipped this long (then tried again)
LOCAL_WINDOWS_KEPT = 10_000  # degraded mode's counters in memory, at most
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
            settings.REDIS_URL,
            max_connections=REDIS_MAX_CONNECTIONS,
            timeout=REDIS_POOL_TIMEOUT_SECONDS,
            **redis_connection_options(asyncio=True),
        )
        client = aioredis.Redis(connection_pool=pool)
        _clients[loop] = client
    return client


class RedisUnavailable(Exception):
    """Redis did not answer within the pipeline's budget, or failed a moment ago."""


_redis_down_until = 0.0


async def redis_call(operation: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
    """Run ``operation`` on the pipeline's client within ``CHAT_REDIS_TIMEOUT`` seconds (the pool retries a
    dead connection within that budget). On a failure, RedisUnavailable, and for the next
    ``REDIS_DOWN_PAUSE_SECONDS`` every call fails at once: during an outage a message waits for Redis once
    per pause, not once per call."""
    global _redis_down_until
    if time.monotonic() < _redis_down_until:
        raise RedisUnavailable()
    try:
        async with asyncio.timeout(settings.CHAT_REDIS_TIMEOUT):
            return await operation(redis_client())
    except (aioredis.RedisError, TimeoutError) as exc:
        _redis_down_until = time.monotonic() + REDIS_DOWN_PAUSE_SECONDS
        logger.warning("Redis unavailable (%s); chat continues in degraded mode", type(exc).__name__)
        raise RedisUnavailable() from exc


# The limits of one message, narrowest first; counting stops at the first one exceeded, so a sender who is
# over their own limit does not use up the wider ones (a flood from one address must not exhaust the
# bot's limit for everyone else). Refusals are counted per bot and day for the analytics.
_CHECK_LIMITS = """
local last = #KEYS
for i = 1, last - 1 do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then redis.call('EXPIRE', KEYS[i], tonumber(ARGV[2 * i])) end
  if count > tonumber(ARGV[2 * i - 1]) then
    if redis.call('INCR', KEYS[last]) == 1 then redis.call('EXPIRE', KEYS[last], 8 * 86400) end
    return {i, count}
  end
end
return {0, 0}
"""


@dataclass(frozen=True)
class Limit:
    key: str  # what is limited, e.g. "ip:7:203.0.113.9"
    rate: str  # "20/min"


def refusals_key(*, bot_id: int, day: str) -> str:
    """Redis counter of a bot's rate-limited messages on a day (YYYYMMDD)."""
    return f"parlor:refused:{bot_id}:{day}"


async def check_rate_limits(limits: list[Limit], *, bot_id: int, count_refusals: bool = True) -> None:
    """Count one hit against each limit, narrowest first, until one is exceeded: then RateLimited, with
    ``first_refusal`` set when this is the sender's first refused message in the window (the pipeline
    stores that one in the conversation; the rest of a flood is only counted). ``count_refusals=False``:
    not a chat message (a lead form), so the analytics' refused-messages counter is left alone."""
    active = [(limit.key, rate) for limit in limits if (rate := parse_rate(limit.rate))]
    if not active:
        return
    now = int(time.time())
    keys, args = [], []
    for key, rate in active:
        window = now // rate.window_seconds
        keys.append(f"parlor:rl:{key}:{rate.window_seconds}:{window}")
        args += [rate.limit, rate.window_seconds + 1]
    day = time.strftime("%Y%m%d", time.gmtime(now))
    # The script counts refusals in its last key: a throwaway one when they are not to be counted.
    keys.append(
        refusals_key(bot_id=bot_id, day=day) if count_refusals else f"parlor:refused-other:{bot_id}:{day}"
    )
    try:
        exceeded, count = await redis_call(lambda client: client.eval(_CHECK_LIMITS, len(keys), *keys, *args))
    except RedisUnavailable:
        exceeded, count = _count_locally(keys[:-1], args)
    if not exceeded:
        return
    rate = active[exceeded - 1][1]
    retry_after = max(1, (now // rate.window_seconds + 1) * rate.window_seconds - now)
    raise RateLimited(
        f"You are sending messages too quickly. Please try again in {retry_after} seconds.",
        retry_after=retry_after,
        first_refusal=count == rate.limit + 1,
    )


# Degraded mode's counters: key -> (monotonic expiry, count), the Lua script's rules in this process.
_local_windows: dict[str, tuple[float, int]] = {}


def _count_locally(keys: list[str], args: list[int]) -> tuple[int, int]:
    """``_CHECK_LIMITS`` counted in memory while Redis is unavailable (refusals are not counted per day)."""
    now = time.monotonic()
    if len(_local_windows) > LOCAL_WINDOWS_KEPT:
        for key in [key for key, (expires, _) in _local_windows.items() if expires <= now]:
            del _local_windows[key]
        if len(_local_windows) > LOCAL_WINDOWS_KEPT:
            _local_windows.clear()  # a flood of distinct senders: start the windows over rather than grow
    for i, key in enumerate(keys):
        limit, ttl = args[2 * i], args[2 * i + 1]
        expires, count = _local_windows.get(key, (0.0, 0))
        if expires <= now:
            expires, count = now + ttl, 0
        count += 1
        _local_windows[key] = (expires, count)
        if count > limit:
            return i + 1, count
    return 0, 0


_local_slots: set[str] = set()  # conversations answering in this process while Redis was unavailable


async def acquire_conversation_slot(conversation_id: str, ttl_seconds: int) -> bool:
    """One answer at a time per conversation, across processes; the TTL frees it if a process dies. While
    Redis is unavailable, one at a time per conversation in this process."""
    key = f"parlor:busy:{conversation_id}"
    try:
        return bool(await redis_call(lambda client: client.set(key, "1", nx=True, ex=ttl_seconds)))
    except RedisUnavailable:
        if conversation_id in _local_slots:
            return False
        _local_slots.add(conversation_id)
        return True


async def release_conversation_slot(conversation_id: str) -> None:
    """Free the conversation for its next message; if Redis is unreachable the slot's TTL frees it."""
    if conversation_id in _local_slots:
        _local_slots.discard(conversation_id)
        return
    try:
        await redis_call(lambda client: client.delete(f"parlor:busy:{conversation_id}"))
    except RedisUnavailable:
        logger.warning("could not release the answer slot of conversation %s", conversation_id)


def redis_state_forget() -> None:
    """Forget Redis failures and degraded-mode counters (tests that stop a Redis server of their own)."""
    global _redis_down_until
    _redis_down_until = 0.0
    _local_windows.clear()
    _local_slots.clear()
