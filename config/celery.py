"""Celery application: Redis broker, tasks discovered in each app's tasks.py, schedule in the database."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun

from config import log_context

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("parlor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
HEADER_PREFIX = "parlor_"


@before_task_publish.connect
def _send_log_context(headers: dict | None = None, **kwargs: object) -> None:
    """A task queued while handling a request (or another task) carries its request id and tenant ids, so
    the worker's log lines can be followed back to the request that caused them."""
    if headers is not None:
        for name, value in log_context.current().items():
            if name != "task_id":
                headers[HEADER_PREFIX + name] = value


@task_prerun.connect
def _bind_log_context(task_id: str | None = None, task: object = None, **kwargs: object) -> None:
    log_context.clear()
    request = getattr(task, "request", None)
    received = {name: getattr(request, HEADER_PREFIX + name, None) for name in log_context.FIELDS}
    log_context.bind(**{name: value for name, value in received.items() if value}, task_id=task_id)


@task_postrun.connect
def _clear_log_context(**kwargs: object) -> None:
    log_context.clear()


@app.task(name="parlor.diagnostics.ping")
def diagnostics_ping_task() -> dict[str, object]:
    """Round trip through broker, worker, database and result backend (used by operators and tests)."""
    import socket

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (database,) = cursor.fetchone()
    return {"pong": True, "worker_host": socket.gethostname(), "database": database}
