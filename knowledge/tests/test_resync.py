from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from knowledge.models import SourceKind
from knowledge.services import sources_resync_due
from knowledge.tests.factories import make_organization, make_source

pytestmark = pytest.mark.django_db


def test_beat_schedule_runs_the_resync_job():
    assert (
        settings.CELERY_BEAT_SCHEDULE["knowledge-resync-due-sources"]["task"]
        == "knowledge.sources_resync_due"
    )


def test_only_due_url_and_website_sources_are_queued(monkeypatch, django_capture_on_commit_callbacks):
    queued: list[int] = []
    monkeypatch.setattr("knowledge.tasks.source_ingest_task.delay", lambda pk: queued.append(pk))
    org = make_organization()
    now = timezone.now()
    due = make_source(organization=org, kind=SourceKind.WEBSITE, url="https://example.com/", status="ready",
                      resync_hours=24, synced_at=now - timedelta(hours=25))  # fmt: skip
    fresh = make_source(organization=org, kind=SourceKind.URL, url="https://example.com/a", status="ready",
                        resync_hours=24, synced_at=now - timedelta(hours=1))  # fmt: skip
    manual = make_source(organization=org, kind=SourceKind.URL, url="https://example.com/b", status="ready",
                         resync_hours=0, synced_at=now - timedelta(days=30))  # fmt: skip
    busy = make_source(organization=org, kind=SourceKind.URL, url="https://example.com/c", status="processing",
                       resync_hours=1, synced_at=now - timedelta(days=30))  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        assert sources_resync_due() == [due.pk]
    assert queued == [due.pk]
    due.refresh_from_db()
    assert due.status == "queued"
    for source in (fresh, manual, busy):
        source.refresh_from_db()
        assert source.status != "queued"
