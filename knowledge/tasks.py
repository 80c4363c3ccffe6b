"""Celery tasks for knowledge: thin wrappers that re-fetch by id and call one service."""

from __future__ import annotations

import logging

from celery import shared_task

from knowledge import services
from knowledge.exceptions import TransientIngestError

logger = logging.getLogger(__name__)

MAX_RETRIES = 4


@shared_task(
    name="knowledge.source_ingest",
    bind=True,
    acks_late=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=1800,
    time_limit=1900,
)
def source_ingest_task(self, source_id: int) -> None:
    """Ingest one source. Safe to run twice: the service replaces the source's chunks in one transaction."""
    try:
        services.source_ingest(source_id=source_id)
    except TransientIngestError as exc:
        if self.request.retries >= MAX_RETRIES:
            services.source_fail(source_id=source_id, reason=f"Gave up after {MAX_RETRIES} retries: {exc}")
            return
        raise self.retry(exc=exc, countdown=min(300, 5 * 2**self.request.retries)) from exc
    except Exception:
        logger.exception("ingesting source %s crashed", source_id)
        services.source_fail(source_id=source_id, reason="An unexpected error stopped processing; try again.")
        raise


@shared_task(name="knowledge.sources_resync_due")
def sources_resync_due_task() -> list[int]:
    """Beat job: queue the URL/website sources whose re-sync interval has passed."""
    return services.sources_resync_due()
