"""Keeps a set of child processes running (``manage.py up``: web, worker, beat).

A child that exits is restarted after a pause that doubles with each quick failure (one that lived
``STABLE_SECONDS`` starts the count over), and says so on the log; the others keep running. Stopping
sends SIGTERM to every child and waits for them, for as long as their own graceful shutdown may take,
before it kills what is left.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

STABLE_SECONDS = 60.0


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_failures: int = 0  # exits in a row, each within STABLE_SECONDS of its start
    restarts: int = 0
    restart_at: float | None = None  # when a child that exited is started again
    exit_codes: list[int] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        commands: dict[str, list[str]],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        stop_grace_seconds: float = 30.0,
        first_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        log: Callable[[str], None] = print,
    ) -> None:
        self.children = {name: Child(name, command) for name, command in commands.items()}
        self.env = env
        self.cwd = cwd
        self.stop_grace_seconds = stop_grace_seconds
        self.first_backoff_seconds = first_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.log = log

    def start(self) -> None:
        for child in self.children.values():
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(child.command, env=self.env, cwd=self.cwd)
        child.started_at = time.monotonic()
        child.restart_at = None

    def check(self) -> None:
        """One round: note children that exited, start again those whose pause is over."""
        now = time.monotonic()
        for child in self.children.values():
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self.log(f"{child.name}: restarting (restart {child.restarts})")
                    self._spawn(child)
                continue
            if child.process is None or (code := child.process.poll()) is None:
                continue
            child.exit_codes.append(code)
            lived = now - child.started_at
            child.quick_failures = child.quick_failures + 1 if lived < STABLE_SECONDS else 1
            pause = min(
                self.max_backoff_seconds, self.first_backoff_seconds * 2 ** (child.quick_failures - 1)
            )
            child.restart_at = now + pause
            self.log(f"{child.name} exited with code {code} after {lived:.0f}s; restarting in {pause:g}s")

    def stop(self) -> None:
        """SIGTERM to every child, then wait up to ``stop_grace_seconds`` for all; kill what is left."""
        running = [
            c.process for c in self.children.values() if c.process is not None and c.process.poll() is None
        ]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_seconds
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """Stop every child at once (a second Ctrl-C)."""
        for child in self.children.values():
            if child.process is not None and child.process.poll() is None:
                child.process.kill()
                child.process.wait()
