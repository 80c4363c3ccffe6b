"""Several Daphne processes on one address: one per core, so a web server uses the whole machine.

The parent binds the listening sockets and each Daphne process adopts one (``--fd``-style endpoint). On
Linux every process gets a socket of its own bound with ``SO_REUSEPORT``: the kernel spreads new
connections evenly over them (a single shared socket lets whichever process wakes first accept up to 100
connections at once, which Twisted does). Elsewhere all processes share one socket. The parent keeps the
sockets for its whole life, so a process that died is restarted on the same socket and connections
arriving meanwhile wait in its backlog instead of being refused.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

LISTEN_BACKLOG = 2048  # 1,000 visitors opening sockets at once must not overflow it (Twisted's default: 50)
RESTART_BACKOFF_SECONDS = (0.5, 30.0)  # first wait, longest wait between restarts of a crashing process
STOP_MARGIN_SECONDS = 10.0  # beyond the answers' grace and their save retries (config/serve.py)


def daphne_command(
    application: str, *, host: str | None = None, port: int | None = None, fd: int | None = None
) -> list[str]:
    """Daphne serving ``application`` on ``host``:``port``, or on the inherited IPv4 listening socket
    ``fd`` (Twisted's ``fd:`` endpoint adopts IPv4 sockets only)."""
    command = [sys.executable, "-m", "config.serve"]  # Daphne that stops gracefully
    if fd is not None:
        command += ["--fd", str(fd)]
    else:
        command += ["-b", host or "127.0.0.1", "-p", str(port or 8000)]
    return [*command, application]


def shares_sockets(host: str) -> bool:
    """Several processes can serve ``host``: an IPv4 address (see ``daphne_command``)."""
    return ":" not in host


def bind_listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` IPv4 sockets listening on ``host``:``port`` with SO_REUSEPORT (Linux), else one socket."""
    spread = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
    sockets = []
    for _ in range(count if spread else 1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if spread:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
        sock.set_inheritable(True)
        sockets.append(sock)
        port = sock.getsockname()[1]  # port 0: the others join the port the first one got
    return sockets


@dataclass
class _Slot:
    sock: socket.socket
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None


@dataclass
class WebProcessGroup:
    """``processes`` Daphne processes serving ``application`` on one address, restarted when one dies."""

    application: str
    host: str
    port: int
    processes: int
    env: dict[str, str] | None = None
    slots: list[_Slot] = field(default_factory=list)

    def start(self) -> None:
        sockets = bind_listening_sockets(self.host, self.port, self.processes)
        self.port = sockets[0].getsockname()[1]
        self.slots = [_Slot(sockets[i % len(sockets)]) for i in range(self.processes)]
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: _Slot) -> None:
        fd = slot.sock.fileno()
        command = daphne_command(self.application, fd=fd)
        slot.proc = subprocess.Popen(command, env=self.env, pass_fds=(fd,))
        slot.started = time.monotonic()
        slot.restart_at = None

    def pids(self) -> list[int]:
        return [slot.proc.pid for slot in self.slots if slot.proc is not None]

    def restart_dead(self) -> list[str]:
        """Restart processes that exited, waiting longer after each quick death; what happened, in words."""
        messages = []
        now = time.monotonic()
        for slot in self.slots:
            if slot.proc is None or slot.proc.poll() is None:
                continue
            if slot.restart_at is None:
                lived = now - slot.started
                slot.failures = 0 if lived > RESTART_BACKOFF_SECONDS[1] else slot.failures + 1
                wait = min(
                    RESTART_BACKOFF_SECONDS[0] * 2 ** max(0, slot.failures - 1), RESTART_BACKOFF_SECONDS[1]
                )
                slot.restart_at = now + wait
                messages.append(
                    f"web process {slot.proc.pid} exited with code {slot.proc.returncode}; "
                    f"restarting in {wait:.1f}s"
                )
            elif now >= slot.restart_at:
                self._spawn(slot)
        return messages

    def stop(self) -> None:
        """SIGTERM every process (each drains its answers in flight: config/serve.py), then kill what is left."""
        from django.conf import settings

        grace = settings.WEB_SHUTDOWN_GRACE + settings.CHAT_SAVE_RETRY_SECONDS + STOP_MARGIN_SECONDS
        running = [slot.proc for slot in self.slots if slot.proc is not None and slot.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sock in {id(slot.sock): slot.sock for slot in self.slots}.values():
            sock.close()


def web_concurrency_default() -> int:
    """One web process per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
