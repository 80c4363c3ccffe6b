"""Liveness and readiness endpoints for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from chatbots.pipeline.ratelimit import redis_client as chat_redis_client
from config.celery import app as celery_app
from config.db import checked_connection
from config.redis_clients import sync_redis_client

CHECK_TIMEOUT_SECONDS = 1.5


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving requests; says nothing about its dependencies."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    return None


def _check_redis_pools() -> dict[str, str]:
    """The pools this process really uses (not a fresh client, which would answer while a pool is broken):
    the Django cache's (API throttling) and the services' blocking one (knowledge versions, refused
    origins). Each retries a dead connection once Redis is back (config/redis_clients.py)."""
    problems = {}
    pools = {"cache": lambda: caches["default"]._cache.get_client().ping(), "services": _ping_services_pool}
    for name, ping in pools.items():
        try:
            ping()
        except Exception as exc:
            problems[name] = f"redis unreachable from the {name} pool: {type(exc).__name__}"
    return problems


def _ping_services_pool() -> None:
    sync_redis_client(settings.REDIS_URL).ping()


async def _check_chat_redis() -> str | None:
    """The chat pipeline's asyncio pool of this event loop (rate limits, answer slots, answer cache)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS * 2):
            await chat_redis_client().ping()
    except Exception as exc:
        return f"redis unreachable from the chat pool: {type(exc).__name__}"
    return None


def _check_celery() -> str | None:
    try:
        replies = celery_app.control.ping(timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        return f"celery broker unreachable: {type(exc).__name__}"
    if not replies:
        return "no celery worker answered"
    return None


@never_cache
@require_GET
async def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve traffic: the database, the Redis pools the app uses and one Celery worker answer."""
    problems = {}
    if problem := await sync_to_async(checked_connection(_check_database))():
        problems["database"] = problem
    redis_problems = await sync_to_async(_check_redis_pools)()
    if problem := await _check_chat_redis():
        redis_problems["chat"] = problem
    if redis_problems:
        problems["redis"] = "; ".join(redis_problems.values())
    # The worker check goes through the broker; skip it when Redis is already known to be down
    # so the endpoint answers quickly instead of waiting for a broker connection timeout.
    elif problem := await sync_to_async(_check_celery)():
        problems["celery"] = problem
    if problems:
        return JsonResponse({"status": "unavailable", "problems": problems}, status=503)
    return JsonResponse({"status": "ready"})
