"""Rebuild the daily analytics of the last N days (a backfill after an upgrade or an import)."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics.services import daily_rollup


class Command(BaseCommand):
    help = "Recompute the daily analytics aggregates of the last N days (today included) from the messages."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=1, help="How many days back, today included.")
        parser.add_argument("--organization", type=int, default=None, help="Only this organization's id.")

    def handle(self, *args, days: int, organization: int | None, **options) -> None:
        if days < 1:
            raise CommandError("--days must be at least 1.")
        today = timezone.now().date()
        for offset in range(days - 1, -1, -1):
            day = today - dt.timedelta(days=offset)
            rows = daily_rollup(day=day, organization_id=organization)
            self.stdout.write(f"{day.isoformat()}: {rows} rows")
