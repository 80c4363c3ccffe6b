"""Celery tasks for chatbots: thin wrappers that re-fetch by id and call one service."""

from __future__ import annotations

from celery import shared_task

from chatbots import exports, handoff_notify, privacy, retention


@shared_task(name="chatbots.conversation_export", acks_late=True, soft_time_limit=1800, time_limit=1900)
def conversation_export_task(export_id: int) -> None:
    """Write one conversation export. Safe to run twice: the service claims the export first."""
    exports.conversation_export_build(export_id=export_id)


@shared_task(name="chatbots.conversation_exports_purge")
def conversation_exports_purge_task() -> int:
    """Beat job: delete the files of exports whose link has expired."""
    return exports.conversation_exports_purge()


@shared_task(name="chatbots.subject_request", acks_late=True, soft_time_limit=3300, time_limit=3600)
def subject_request_task(request_id: int) -> None:
    """Export or erase one visitor's data. Safe to run twice: the service claims the request first."""
    privacy.subject_request_run(request_id=request_id)


@shared_task(name="chatbots.subject_requests_resume")
def subject_requests_resume_task() -> None:
    """Beat job: queue again the requests whose worker died."""
    privacy.subject_requests_resume()


@shared_task(name="chatbots.subject_exports_purge")
def subject_exports_purge_task() -> None:
    """Beat job: delete the files of visitor exports whose link has expired."""
    privacy.subject_exports_purge()


@shared_task(name="chatbots.retention_run", acks_late=True, soft_time_limit=3300, time_limit=3600)
def retention_run_task() -> None:
    """Beat job: delete expired conversations and audit events in bounded batches."""
    retention.retention_run()


@shared_task(name="chatbots.handoff_notify", acks_late=True)
def handoff_notify_task(conversation_id: str) -> int:
    """E-mail the members who want it about a conversation waiting for a person. Run twice, it sends
    twice at worst while the conversation still waits: a duplicate alert, never a lost one."""
    return handoff_notify.handoff_notify_operators(conversation_id=conversation_id)
