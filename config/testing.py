"""Shared pytest fixtures: a real Celery worker, a clean Redis, and a subprocess helper."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _clean_redis(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with an empty Redis database (rate limits, caches, channel layer)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    client.close()
    from knowledge.embedders import forget_serving_model

    forget_serving_model()  # the embedding model is re-read from each test's database
    yield


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[object]:
    """A real Celery worker (thread, solo pool) consuming from the real Redis broker.

    It shares this process's settings, so it reads and writes the test database; tests that use it need
    committed data, hence ``transactional_db``.
    """
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30) as worker:
        yield worker


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker) -> Iterator[None]:
    """pytest-django's test database, whose teardown would otherwise find it still in use: the chat's
    worker threads (retrieval, embedding) keep their connections for the life of the process."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
