"""Liveness and readiness endpoints for load balancers and orchestrators."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app

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


def _check_redis() -> str | None:
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
            socket_timeout=CHECK_TIMEOUT_SECONDS,
        )
        client.ping()
        client.close()
    except Exception as exc:
        return f"redis unreachable: {type(exc).__name__}"
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
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve traffic: database, Redis and at least one Celery worker answer."""
    problems = {}
    for name, check in (("database", _check_database), ("redis", _check_redis)):
        if problem := check():
            problems[name] = problem
    # The worker check goes through the broker; skip it when Redis is already known to be down
    # so the endpoint answers quickly instead of waiting for a broker connection timeout.
    if "redis" not in problems and (problem := _check_celery()):
        problems["celery"] = problem
    if problems:
        return JsonResponse({"status": "unavailable", "problems": problems}, status=503)
    return JsonResponse({"status": "ready"})
