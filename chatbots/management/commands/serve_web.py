"""Serve Parlor's ASGI application (HTTP + WebSocket) with one Daphne process per core.

One Python process runs on one core; a machine with more cores needs more processes. They share nothing
but the listening address, the database and the Redis channel layer (which already carries events between
the web processes of a scaled-out deployment).

    python manage.py serve_web --host 0.0.0.0 --port 8000            # WEB_CONCURRENCY processes (default: cores)
    python manage.py serve_web --processes 1                          # one graceful Daphne (`python -m config.serve -b … -p …`)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from config.web_processes import WebProcessGroup, daphne_command, shares_sockets


class Command(BaseCommand):
    help = "Serve HTTP and WebSocket with WEB_CONCURRENCY Daphne processes sharing one address."
    requires_system_checks: list[str] = []  # the Daphne processes run the checks' subject, not this one
    requires_migrations_checks = False

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--processes",
            type=int,
            default=None,
            help="Daphne processes (default: the WEB_CONCURRENCY setting, itself the number of cores).",
        )
        parser.add_argument("--application", default="config.asgi:application")

    def handle(
        self, *args: Any, host: str, port: int, processes: int | None, application: str, **options: Any
    ) -> None:
        count = max(1, processes or settings.WEB_CONCURRENCY)
        if count > 1 and not shares_sockets(host):
            self.stderr.write(f"{host} is an IPv6 address: serving it with one process.")
            count = 1
        if count == 1:
            # One process: become Daphne itself (same signals, same exit code, nothing in between).
            command = daphne_command(application, host=host, port=port)
            os.execv(command[0], command)  # noqa: S606 - our own interpreter running Daphne
        group = WebProcessGroup(application, host=host, port=port, processes=count)
        stopping = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        group.start()
        self.stdout.write(f"Serving on {host}:{port} with {count} Daphne processes (pids {group.pids()}).")
        self.stdout.flush()
        try:
            while not stopping:
                for message in group.restart_dead():
                    self.stderr.write(message)
                time.sleep(0.2)
        finally:
            group.stop()
        sys.exit(0)
