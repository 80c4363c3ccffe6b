"""Celery tasks for accounts: thin wrappers that re-fetch by id and call one service."""

from __future__ import annotations

from celery import shared_task

from accounts import deletion


@shared_task(name="accounts.organization_delete", acks_late=True, soft_time_limit=3300, time_limit=3600)
def organization_delete_task(organization_id: int) -> None:
    """Delete a confirmed organization with everything it holds. Safe to run twice (deletes what is left)."""
    deletion.organization_delete(organization_id=organization_id)


@shared_task(name="accounts.organizations_resume_deletion")
def organizations_resume_deletion_task() -> None:
    """Beat job: restart confirmed deletions that a dead worker left unfinished."""
    deletion.organizations_resume_deletion()
