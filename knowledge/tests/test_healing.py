"""Ingestion heals itself: a lost task message or a killed worker is made good by the beat job
(knowledge/healing.py), on a real Celery worker, without duplicating chunks."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.utils import timezone

from chatbots.testing import start_celery_worker, stop
from config.celery import app
from knowledge.healing import source_ingest_claim, sources_heal
from knowledge.models import Chunk, Source, SourceKind, SourceStatus
from knowledge.services import source_create
from knowledge.tasks import sources_heal_task
from knowledge.tests.factories import make_organization, make_source


def handbook(sections: int) -> str:
    """Markdown text of ``sections`` sections: one chunk each."""
    return "\n\n".join(
        f"## Section {i}\n\nOrder {i} ships from the warehouse in Graz. Boots of size {i} can be returned "
        f"within 30 days. Tents of model {i} carry a two-year warranty. Laces of colour {i} are sold in pairs."
        for i in range(sections)
    )


def _wait(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _status(source_id: int) -> str:
    return Source.objects.values_list("status", flat=True).get(pk=source_id)


def _assert_chunks_once(source: Source) -> None:
    ordinals = sorted(Chunk.objects.filter(source=source).values_list("ordinal", flat=True))
    assert len(ordinals) == source.chunk_count > 1
    assert ordinals == list(range(len(ordinals)))


def test_beat_schedule_runs_the_heal_job_more_often_than_a_source_counts_as_lost():
    entry = settings.CELERY_BEAT_SCHEDULE["knowledge-heal-sources"]
    assert entry["task"] == "knowledge.sources_heal"
    assert entry["schedule"] <= min(
        settings.KNOWLEDGE_INGEST_QUEUED_SECONDS, settings.KNOWLEDGE_INGEST_LEASE_SECONDS
    )
    # A message of a worker that died comes back only after the longest task could have finished.
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert timeout > settings.KNOWLEDGE_INGEST_TIME_LIMIT > settings.KNOWLEDGE_INGEST_SOFT_TIME_LIMIT


@pytest.mark.django_db
def test_one_message_claims_a_source_and_duplicates_find_it_taken():
    source = make_source(organization=make_organization(), status=SourceStatus.QUEUED)
    assert source_ingest_claim(source_id=source.pk)
    assert not source_ingest_claim(source_id=source.pk)  # a live run holds it
    Source.objects.filter(pk=source.pk).update(requeue_at=timezone.now() - timedelta(seconds=1))
    assert source_ingest_claim(source_id=source.pk)  # its worker stopped beating: taken over
    Source.objects.filter(pk=source.pk).update(status=SourceStatus.READY)
    assert not source_ingest_claim(source_id=source.pk)  # a late redelivery of a finished source


@pytest.mark.django_db
def test_heal_queues_lost_sources_and_fails_one_that_keeps_dying(
    monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[int] = []
    monkeypatch.setattr("knowledge.tasks.source_ingest_task.delay", lambda pk: sent.append(pk))
    org = make_organization()
    past = timezone.now() - timedelta(seconds=1)
    lost_message = make_source(organization=org, status=SourceStatus.QUEUED, requeue_at=past)
    dead_worker = make_source(organization=org, status=SourceStatus.PROCESSING, progress=55, requeue_at=past)
    keeps_dying = make_source(
        organization=org, status=SourceStatus.PROCESSING, requeue_at=past,
        ingest_restarts=settings.KNOWLEDGE_INGEST_MAX_RESTARTS,
    )  # fmt: skip
    waiting = make_source(
        organization=org, status=SourceStatus.QUEUED, requeue_at=timezone.now() + timedelta(minutes=1)
    )
    alive = make_source(
        organization=org, status=SourceStatus.PROCESSING, requeue_at=timezone.now() + timedelta(minutes=1)
    )
    done = make_source(organization=org, status=SourceStatus.READY, requeue_at=past)

    with django_capture_on_commit_callbacks(execute=True):
        requeued = sources_heal()
    assert sorted(requeued) == sorted(sent) == sorted([lost_message.pk, dead_worker.pk])
    for source in (lost_message, dead_worker, keeps_dying, waiting, alive, done):
        source.refresh_from_db()
    assert (lost_message.status, lost_message.ingest_restarts) == (SourceStatus.QUEUED, 0)
    assert (dead_worker.status, dead_worker.progress, dead_worker.ingest_restarts) == (
        SourceStatus.QUEUED,
        0,
        1,
    )
    assert keeps_dying.status == SourceStatus.FAILED
    assert "stopped" in keeps_dying.status_reason and "without finishing" in keeps_dying.status_reason
    assert (waiting.status, alive.status, done.status) == (
        SourceStatus.QUEUED,
        SourceStatus.PROCESSING,
        "ready",
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert sources_heal() == []  # queued again just now: not lost yet
    assert len(sent) == 2


@pytest.mark.django_db(transaction=True)
def test_source_queued_without_a_task_message_becomes_ready_when_the_beat_job_runs(celery_worker):
    # A lost message (Redis restarted with the task in its queue): the row says queued, nothing is queued.
    source = Source.objects.create(
        organization=make_organization(), kind=SourceKind.TEXT, title="Handbook", text=handbook(6),
        status=SourceStatus.QUEUED, requeue_at=timezone.now() - timedelta(seconds=1),
    )  # fmt: skip

    assert sources_heal_task.delay().get(timeout=30) == [source.pk]  # what beat sends every 30 s

    _wait(lambda: _status(source.pk) in ("ready", "failed"), timeout=120, what="the healed ingestion")
    source.refresh_from_db()
    assert source.status == "ready", source.status_reason
    _assert_chunks_once(source)


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_ingestion_is_restarted_and_finishes_without_duplicate_chunks(settings):
    # One chunk per embedder call and a short lease: the run is long enough to be killed in the middle, and
    # its death is noticed after a few seconds.
    env = {
        "KNOWLEDGE_EMBED_BATCH": "1",
        "KNOWLEDGE_INGEST_LEASE_SECONDS": "3",
        "KNOWLEDGE_HEAL_INTERVAL": "1",
    }
    settings.KNOWLEDGE_INGEST_LEASE_SECONDS = 3
    worker = start_celery_worker(env, name="doomed")
    try:
        source = source_create(organization=make_organization(), kind=SourceKind.TEXT, title="Handbook",
                               text=handbook(16))  # fmt: skip
        _wait(
            lambda: Source.objects.get(pk=source.pk).progress >= 20, timeout=120, what="the ingestion to run"
        )
        os.kill(worker.pid, signal.SIGKILL)  # a crash: no clean shutdown, the message stays unacknowledged
        worker.wait(10)
    finally:
        if worker.poll() is None:
            stop(worker)
    source.refresh_from_db()
    assert source.status == SourceStatus.PROCESSING and 20 <= source.progress < 100
    assert not Chunk.objects.filter(source=source).exists()

    _wait(lambda: Source.objects.get(pk=source.pk).requeue_at < timezone.now(), timeout=10, what="the lease")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):  # another machine
        assert sources_heal() == [source.pk]  # what the beat job does
        _wait(lambda: _status(source.pk) in ("ready", "failed"), timeout=180, what="the restarted ingestion")
    source.refresh_from_db()
    assert source.status == "ready", source.status_reason
    assert source.ingest_restarts == 1
    _assert_chunks_once(source)
