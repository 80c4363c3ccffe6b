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
