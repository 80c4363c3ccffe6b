"""The roll-up on a real Celery worker: duplicated and concurrent deliveries of a day leave one set of
rows that matches the messages; the beat schedule names tasks the worker knows."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.utils import timezone

from analytics.models import DailyStat
from analytics.services import daily_rollup
from analytics.tasks import daily_rollup_task, rollup_stale_days_task
from analytics.tests.factories import make_bot, make_traffic
from config.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


def test_duplicated_and_concurrent_rollups_of_a_day_leave_one_set_of_rows(celery_worker):
    bot = make_bot()
    today = timezone.now().date()
    make_traffic(bot=bot, day=today)
    make_traffic(bot=bot, day=today, channel="api")
    results = [daily_rollup_task.delay(day=today.isoformat()) for _ in range(3)]
    results.append(daily_rollup_task.delay(days_ago=0))
    daily_rollup(day=today)  # at the same time as the worker: the advisory lock orders them
    assert [result.get(timeout=60) for result in results] == [2, 2, 2, 2]
    rows = DailyStat.objects.filter(day=today)
    assert sorted(rows.values_list("channel", "questions", "answers")) == [("api", 4, 7), ("widget", 4, 7)]


def test_stale_days_task_rebuilds_changed_days(celery_worker):
    bot = make_bot()
    yesterday = timezone.now().date() - dt.timedelta(days=1)
    make_traffic(bot=bot, day=yesterday)
    assert rollup_stale_days_task.delay().get(timeout=60) == [yesterday.isoformat()]
    assert rollup_stale_days_task.delay().get(timeout=60) == []
    assert DailyStat.objects.get(day=yesterday).questions == 4


def test_beat_schedule_runs_registered_analytics_tasks():
    app.loader.import_default_modules()
    analytics_jobs = {
        name: entry for name, entry in settings.CELERY_BEAT_SCHEDULE.items() if name.startswith("analytics-")
    }
    assert {entry["task"] for entry in analytics_jobs.values()} <= set(app.tasks)
    assert analytics_jobs["analytics-rollup-today"]["schedule"] <= 60  # today fresh within a minute
