"""Celery application: Redis broker, tasks discovered in each app's tasks.py, schedule in the database."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("parlor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="parlor.diagnostics.ping")
def diagnostics_ping_task() -> dict[str, object]:
    """Round trip through broker, worker, database and result backend (used by operators and tests)."""
    import socket

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (database,) = cursor.fetchone()
    return {"pong": True, "worker_host": socket.gethostname(), "database": database}
