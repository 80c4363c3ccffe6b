"""Ingestion that heals itself: a claim per run, a heartbeat while it runs, and a beat job for the lost ones.

The broker alone cannot be trusted with an ingestion: a Redis restart drops queued messages, and a worker
killed mid-way leaves its message unacknowledged until the visibility timeout (tens of minutes). So every
queued or processing source carries ``requeue_at``, the time by which something must have happened:

- queued: a worker must have claimed it (``KNOWLEDGE_INGEST_QUEUED_SECONDS`` after it was queued);
- processing: the running ingestion renews it every third of ``KNOWLEDGE_INGEST_LEASE_SECONDS`` from a
  heartbeat thread, which dies with its worker.

``sources_heal`` (beat, every ``KNOWLEDGE_HEAL_INTERVAL`` seconds) queues every source past its time
again, and fails one that had to be restarted ``KNOWLEDGE_INGEST_MAX_RESTARTS`` times. Any number of
messages for one source are safe: ``source_ingest_claim`` lets one run at a time through (a conditional
UPDATE), and a late or duplicated message finds the source claimed or done and does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from knowledge.models import Source, SourceStatus
from knowledge.versions import knowledge_changed

logger = logging.getLogger(__name__)


def queued_deadline(*, delay_seconds: float = 0) -> datetime:
    """When a source queued now (to start in ``delay_seconds``) counts as lost if no worker claimed it."""
    return timezone.now() + timedelta(seconds=delay_seconds + settings.KNOWLEDGE_INGEST_QUEUED_SECONDS)


def ingest_lease_end() -> datetime:
    """Until when a processing source counts as alive without another heartbeat."""
    return timezone.now() + timedelta(seconds=settings.KNOWLEDGE_INGEST_LEASE_SECONDS)


def _pending_past_deadline(now: datetime) -> Q:
    """Queued or processing, and past its time (no time at all: a row from before healing existed)."""
    return Q(status__in=[SourceStatus.QUEUED, SourceStatus.PROCESSING]) & (
        Q(requeue_at__lt=now) | Q(requeue_at__isnull=True)
    )


def source_ingest_claim(*, source_id: int) -> bool:
    """Take the source for one run: queued, or processing without a heartbeat (its worker died). False when
    it is done, failed, deleted, or being ingested by a live worker: the message is a duplicate."""
    now = timezone.now()
    claimable = Q(status=SourceStatus.QUEUED) | _pending_past_deadline(now)
    return bool(
        Source.objects.filter(claimable, pk=source_id).update(
            status=SourceStatus.PROCESSING, progress=1, status_reason="", requeue_at=ingest_lease_end()
        )
    )


def source_ingest_retry_later(*, source_id: int, reason: str, delay_seconds: float) -> None:
    """A transient failure: back to queued until the task's retry, so the retry claims it like any message
    (and the healing job sends another one if the retry's message is lost)."""
    Source.objects.filter(pk=source_id, status=SourceStatus.PROCESSING).update(
        status=SourceStatus.QUEUED,
        status_reason=f"Retrying shortly: {reason}"[:2000],
        requeue_at=queued_deadline(delay_seconds=delay_seconds),
    )


def _renew_lease(source_id: int) -> None:
    Source.objects.filter(pk=source_id, status=SourceStatus.PROCESSING).update(requeue_at=ingest_lease_end())


@contextlib.contextmanager
def heartbeat(*, source_id: int) -> Iterator[None]:
    """Renew the processing lease from a thread while the body runs: a run that is slow but alive (a long
    parse, a large recording) is never restarted; a killed worker stops beating at once."""
    if connection.in_atomic_block:
        # The caller's transaction hides the lease from everyone until it commits (and would make the
        # thread's UPDATE wait for it): nothing to renew.
        yield
        return
    stop = threading.Event()
    interval = settings.KNOWLEDGE_INGEST_LEASE_SECONDS / 3

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    _renew_lease(source_id)
                except Exception:  # the database is briefly away: the next beat tries again
                    logger.warning("ingestion heartbeat of source %s failed", source_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"ingest-heartbeat-{source_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def sources_heal(*, now: datetime | None = None) -> list[int]:
    """Beat job: queue again every source whose broker message or worker was lost; fail those restarted
    ``KNOWLEDGE_INGEST_MAX_RESTARTS`` times. Returns the ids queued again. Safe to run on several beats at
    once: each source is taken by a conditional UPDATE."""
    from knowledge.tasks import source_ingest_task

    now = now or timezone.now()
    requeued: list[int] = []
    limit = settings.KNOWLEDGE_INGEST_MAX_RESTARTS
    candidates = Source.objects.filter(_pending_past_deadline(now)).values_list("pk", "status")
    for source_id, status in candidates:
        # Only a run that started and died counts towards the limit; a lost message is not the source's fault.
        restarted = 1 if status == SourceStatus.PROCESSING else 0
        with transaction.atomic():
            taken = Source.objects.filter(_pending_past_deadline(now), pk=source_id, status=status)
            if restarted and taken.filter(ingest_restarts__gte=limit).update(
                status=SourceStatus.FAILED,
                progress=0,
                requeue_at=None,
                status_reason=(
                    f"Processing stopped {limit + 1} times without finishing (the worker was lost each "
                    "time, e.g. out of memory); check the file, then ingest it again."
                ),
            ):
                logger.warning("source %s failed after %s restarts", source_id, limit)
                organization_id = Source.objects.values_list("organization_id", flat=True).get(pk=source_id)
                knowledge_changed(organization_id=organization_id)  # its FAQ pairs stop answering
                continue
            if not taken.update(
                status=SourceStatus.QUEUED,
                progress=0,
                requeue_at=queued_deadline(),
                ingest_restarts=F("ingest_restarts") + restarted,
            ):
                continue  # claimed or finished meanwhile
            transaction.on_commit(lambda source_id=source_id: source_ingest_task.delay(source_id))
        logger.warning(
            "source %s was %s past its deadline: queued again",
            source_id,
            status,
            extra={"source_id": source_id},
        )
        requeued.append(source_id)
    return requeued
