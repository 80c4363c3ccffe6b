"""Celery tasks for chatbots: thin wrappers that re-fetch by id and call one service."""

from __future__ import annotations

from celery import shared_task

from chatbots import exports


@shared_task(name="chatbots.conversation_export", acks_late=True, soft_time_limit=1800, time_limit=1900)
def conversation_export_task(export_id: int) -> None:
    """Write one conversation export. Safe to run twice: the service claims the export first."""
    exports.conversation_export_build(export_id=export_id)


@shared_task(name="chatbots.conversation_exports_purge")
def conversation_exports_purge_task() -> int:
    """Beat job: delete the files of exports whose link has expired."""
    return exports.conversation_exports_purge()
