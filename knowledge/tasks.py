"""Celery tasks for knowledge: thin wrappers that re-fetch by id and call one service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from knowledge import healing, services
from knowledge.exceptions import TransientIngestError

logger = logging.getLogger(__name__)

MAX_RETRIES = 4


@shared_task(
    name="knowledge.source_ingest",
    bind=True,
    acks_late=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=settings.KNOWLEDGE_INGEST_SOFT_TIME_LIMIT,
    time_limit=settings.KNOWLEDGE_INGEST_TIME_LIMIT,
)
def source_ingest_task(self, source_id: int) -> None:
    """Ingest one source. Safe to run twice: only the message that claims the source runs it (a duplicate,
    late or redelivered one finds it claimed or done), and the service replaces the source's chunks in one
    transaction."""
    try:
        services.source_ingest(source_id=source_id, claim=True)
    except TransientIngestError as exc:
        if self.request.retries >= MAX_RETRIES:
            services.source_fail(source_id=source_id, reason=f"Gave up after {MAX_RETRIES} retries: {exc}")
            return
        countdown = min(300, 5 * 2**self.request.retries)
        healing.source_ingest_retry_later(source_id=source_id, reason=str(exc), delay_seconds=countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc
    except Exception:
        logger.exception("ingesting source %s crashed", source_id)
        services.source_fail(source_id=source_id, reason="An unexpected error stopped processing; try again.")
        raise


@shared_task(name="knowledge.sources_resync_due")
def sources_resync_due_task() -> list[int]:
    """Beat job: queue the URL/website sources whose re-sync interval has passed."""
    return services.sources_resync_due()


@shared_task(name="knowledge.sources_heal")
def sources_heal_task() -> list[int]:
    """Beat job: queue again the sources whose task message or worker was lost (knowledge/healing.py)."""
    return healing.sources_heal()
