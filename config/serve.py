"""The web server: Daphne, stopping gracefully (``python -m config.serve -b 0.0.0.0 -p 8000 config.asgi:application``).

Daphne's own shutdown cancels every application at once, and the reactor stops before a cancelled chat
answer has stored anything: answers that were streaming were lost on every deploy. Here SIGTERM (or
SIGINT) first closes the listening sockets (no new connections; a load balancer sees the port closed),
then lets the answers in flight finish for ``WEB_SHUTDOWN_GRACE`` seconds, then cuts the rest, which the
pipeline stores as incomplete (``server_shutdown``), and only then lets Daphne stop (config/shutdown.py).
Takes Daphne's command-line arguments.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.server import Server
from django.conf import settings
from twisted.internet import defer

from config import shutdown

logger = logging.getLogger("parlor.serve")


class GracefulServer(Server):
    """Daphne that drains its answers in flight before its applications are cancelled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ports: list[Any] = []

    def listen_success(self, port: Any) -> None:
        self.ports.append(port)  # Daphne keeps only the listening Deferreds, not the ports to close
        super().listen_success(port)

    def kill_all_applications(self) -> defer.Deferred:
        # Twisted waits for the Deferred a "before shutdown" trigger returns before it stops the reactor.
        drained = defer.Deferred.fromFuture(asyncio.ensure_future(self._drain()))
        drained.addErrback(lambda failure: logger.error("graceful shutdown failed: %s", failure.value))
        drained.addBoth(lambda _: Server.kill_all_applications(self))
        return drained

    async def _drain(self) -> None:
        for port in self.ports:
            port.stopListening()
        logger.warning(
            "stopping: no new connections; answers in flight have %ss to finish", settings.WEB_SHUTDOWN_GRACE
        )
        await shutdown.drain(
            grace_seconds=settings.WEB_SHUTDOWN_GRACE, save_seconds=settings.CHAT_SAVE_RETRY_SECONDS
        )


class GracefulCommandLineInterface(CommandLineInterface):
    server_class = GracefulServer


if __name__ == "__main__":
    GracefulCommandLineInterface.entrypoint()
