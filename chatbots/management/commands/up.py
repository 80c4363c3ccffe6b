"""Run all of Parlor in the foreground: Daphne (HTTP + WebSocket, one process per core: ``serve_web``), a
Celery worker (one pool process per core) and Celery beat.

Applies migrations and seeds the demo organization first, saying what it does, and prints the address
and the demo credentials once the web server answers. A child that dies is restarted with a growing
pause (config/supervisor.py), the others keep running. Ctrl-C (or SIGTERM) stops every child gracefully:
the web server lets answers in flight finish (``WEB_SHUTDOWN_GRACE``); a second Ctrl-C stops them at once.
Embedded PostgreSQL/Redis stop with this process.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any
from urllib.request import urlopen

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from chatbots.demo import demo_seed
from config.supervisor import Supervisor

# Beyond the web server's grace: time for cut answers to be stored, and for the worker's warm shutdown.
SHUTDOWN_MARGIN_SECONDS = 15


class Command(BaseCommand):
    help = "Migrate, seed the demo organization, then run web, worker and beat until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="Celery worker processes (default: the WORKER_CONCURRENCY setting, one per core).",
        )
        parser.add_argument("--no-beat", action="store_true", help="Do not run Celery beat.")

    def _step(self, text: str) -> None:
        self.stdout.write(f"==> {text}")
        self.stdout.flush()

    def handle(
        self, *args: Any, host: str, port: int, concurrency: int | None, no_beat: bool, **options: Any
    ) -> None:
        self._step("Applying database migrations…")
        call_command("migrate", interactive=False, verbosity=0)
        if not settings.DEBUG:
            self._step("Collecting static files…")
            call_command("collectstatic", interactive=False, verbosity=0)
        self._step("Creating the demo organization, its owner and its bot…")
        self.seed = demo_seed()
        self.base = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port}"  # noqa: S104
        # The web server is asked on the address it binds (0.0.0.0 answers on loopback).
        self.probe_url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/healthz"  # noqa: S104

        # Children reuse the database and Redis this process resolved (embedded or configured).
        env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL, "REDIS_URL": settings.REDIS_URL}
        env.setdefault("SITE_URL", self.base)  # links in e-mails and embed snippets point at this server
        python = sys.executable
        commands = {
            # WEB_CONCURRENCY Daphne processes on one address (config/web_processes.py).
            "web": [python, str(settings.BASE_DIR / "manage.py"), "serve_web", "--host", host, "--port", str(port)],
            "worker": [
                python, "-m", "celery", "-A", "config", "worker",
                "--loglevel", "INFO", "--concurrency", str(concurrency or settings.CELERY_WORKER_CONCURRENCY),
            ],
        }  # fmt: skip
        if not no_beat:
            commands["beat"] = [
                python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                "--schedule", str(settings.DATA_DIR / "celerybeat-schedule"),
            ]  # fmt: skip
        self._step(f"Starting the web server, the worker{'' if no_beat else ' and beat'}…")
        self._run(commands, env)

    def _ready_message(self) -> str:
        seed, base = self.seed, self.base
        return (
            self.style.SUCCESS(f"\nParlor is ready at {base}/\n")
            + "Sign in as the demo organization's owner:\n"
            + f"  Sign in:      {base}/accounts/login/\n"
            + f"  E-mail:       {seed.user.email}\n"
            + f"  Password:     {seed.password}\n"
            + f"  Organization: {seed.organization.name}\n"
            + f"  Demo bot:     {seed.bot.name} (public id {seed.bot.public_id})\n"
            + f"  Chat page:    {base}/chat/{seed.bot.public_id}/\n"
            + f'  Embed code:   <script src="{base}/widget.js" data-bot="{seed.bot.public_id}" defer></script>\n'
            + f"Operator (every organization): {seed.operator.email}, password in {seed.operator_password_file}\n"
            + f"Health: {base}/healthz   Ready: {base}/readyz\n"
            + "Press Ctrl-C to stop.\n"
        )

    def _answers(self) -> bool:
        try:
            with urlopen(self.probe_url, timeout=1) as response:  # noqa: S310 - our own http:// URL
                return response.status == 200
        except OSError:
            return False

    def _run(self, commands: dict[str, list[str]], env: dict[str, str]) -> None:
        supervisor = Supervisor(
            commands,
            env=env,
            cwd=str(settings.BASE_DIR),  # `-m config.serve` and `-A config` import from the project
            stop_grace_seconds=settings.WEB_SHUTDOWN_GRACE + SHUTDOWN_MARGIN_SECONDS,
            log=lambda line: (self.stderr.write(line), self.stderr.flush()),
        )
        signals = 0

        def request_stop(signum: int, frame: object) -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                self.stderr.write("Stopping at once.")
                supervisor.kill()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        announced = False
        supervisor.start()
        try:
            while not signals:
                supervisor.check()
                if not announced and self._answers():
                    # Only now: "ready" printed before the server listens sent people to a dead address.
                    announced = True
                    self.stdout.write(self._ready_message())
                    self.stdout.flush()
                time.sleep(0.3)
            self.stdout.write("Stopping Parlor (answers in flight may finish; Ctrl-C again to stop at once)…")
            self.stdout.flush()
        finally:
            supervisor.stop()
        self.stdout.write("Parlor stopped.")
