"""Celery tasks for webhooks: thin wrappers that take ids and call one service."""

from __future__ import annotations

from celery import shared_task

from webhooks import delivery, services


@shared_task(name="webhooks.deliver", acks_late=True, ignore_result=True)
def webhook_deliver_task(delivery_id: int) -> None:
    """One attempt of one delivery. Safe to run twice: the service claims the delivery first, and a
    failed attempt schedules its own retry."""
    delivery.webhook_delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.deliveries_resume", ignore_result=True)
def webhook_deliveries_resume_task() -> int:
    """Beat job: queue due retries and deliveries whose worker died."""
    return services.webhook_deliveries_resume()


@shared_task(name="webhooks.log_purge", ignore_result=True)
def webhook_log_purge_task() -> int:
    """Beat job: delete events older than WEBHOOK_LOG_RETENTION_DAYS that have nothing pending."""
    return services.webhook_log_purge()
