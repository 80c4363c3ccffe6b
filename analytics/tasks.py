"""Celery tasks for analytics: thin wrappers around the roll-up services (see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from analytics import services


@shared_task(name="analytics.daily_rollup", acks_late=True)
def daily_rollup_task(day: str | None = None, days_ago: int = 0, organization_id: int | None = None) -> int:
    """Rebuild one day: ``day`` (ISO date) or, for the beat schedule, ``days_ago`` days before today
    (UTC, read when the task runs). Safe to run twice or concurrently: the service replaces the day."""
    when = dt.date.fromisoformat(day) if day else timezone.now().date() - dt.timedelta(days=days_ago)
    return services.daily_rollup(day=when, organization_id=organization_id)


@shared_task(name="analytics.rollup_stale_days", acks_late=True)
def rollup_stale_days_task() -> list[str]:
    """Beat job: rebuild the days of the last ANALYTICS_RECHECK_DAYS whose messages changed since."""
    since = timezone.now().date() - dt.timedelta(days=settings.ANALYTICS_RECHECK_DAYS)
    return [day.isoformat() for day in services.rollup_stale_days(since=since)]
