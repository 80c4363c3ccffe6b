"""The suite runs on services of its own (config/testing.py), so concurrent runs cannot disturb each other."""

from __future__ import annotations

import os

import psutil
import pytest
import redis
from django.conf import settings
from django.db import connection

from config.testing import TEST_REDIS_URL_ENV


def test_redis_is_a_server_this_run_started() -> None:
    if os.environ.get(TEST_REDIS_URL_ENV):
        pytest.skip(f"{TEST_REDIS_URL_ENV} chooses an existing Redis")
    assert settings.CELERY_BROKER_URL == settings.CELERY_RESULT_BACKEND == settings.REDIS_URL
    assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"] == settings.REDIS_URL
    assert os.environ["REDIS_URL"] == settings.REDIS_URL  # what subprocesses of the tests inherit
    client = redis.Redis.from_url(settings.REDIS_URL)
    server_pid = client.info("server")["process_id"]
    client.close()
    assert psutil.Process(server_pid).ppid() == os.getpid()


@pytest.mark.django_db
def test_test_database_and_media_folder_are_this_runs_own() -> None:
    assert connection.settings_dict["NAME"] == os.environ["PARLOR_TEST_DB_NAME"]  # test_parlor_run<pid>
    assert str(settings.MEDIA_ROOT) == os.environ["MEDIA_ROOT"]  # in the run's temporary folder
