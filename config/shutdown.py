"""Work in flight in a web process, so that a process told to stop lets it finish (config/serve.py).

The chat pipeline registers each answer while it runs (``in_flight``). On SIGTERM the server stops
accepting connections and ``drain`` waits for the registered answers for a grace period; those still
running then are cancelled, and their pipeline stores what was streamed as incomplete, with the
``server_shutdown`` code because ``stopping()`` is true by then, before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.05

_in_flight: set[asyncio.Task[object]] = set()
_draining = False  # no longer ready for new traffic (readyz answers 503)
_stopping = False  # the grace period is over: answers still running are being cut


@contextmanager
def in_flight() -> Iterator[None]:
    """Count the current task as work a graceful shutdown waits for."""
    task = asyncio.current_task()
    if task is None:
        yield
        return
    _in_flight.add(task)
    try:
        yield
    finally:
        _in_flight.discard(task)


def draining() -> bool:
    """The process was told to stop: load balancers should send it nothing new."""
    return _draining


def stopping() -> bool:
    """The grace period ended: an answer cancelled now was cut by the shutdown, not by its caller."""
    return _stopping


@dataclass(frozen=True)
class DrainReport:
    finished: int  # answers that ended by themselves within the grace period
    cut: int  # answers stopped at its end (stored as incomplete)
    unsaved: int  # cut answers that had not finished storing within ``save_seconds``


async def drain(*, grace_seconds: float, save_seconds: float) -> DrainReport:
    """Wait up to ``grace_seconds`` for the answers in flight (also those that start meanwhile on sockets
    already open), then cancel the rest and wait up to ``save_seconds`` for them to store what they
    streamed (a save retries across a database restart, hence a budget of its own)."""
    global _draining, _stopping
    _draining = True
    seen: set[asyncio.Task[object]] = set()
    deadline = time.monotonic() + grace_seconds
    while _in_flight and time.monotonic() < deadline:
        seen |= _in_flight
        await asyncio.sleep(POLL_SECONDS)
    remaining = {task for task in _in_flight if not task.done()}
    seen |= remaining
    _stopping = True
    for task in remaining:
        task.cancel()
    unsaved: set[asyncio.Task[object]] = set()
    if remaining:
        _, unsaved = await asyncio.wait(remaining, timeout=save_seconds)
    report = DrainReport(finished=len(seen) - len(remaining), cut=len(remaining), unsaved=len(unsaved))
    logger.info(
        "shutdown: %s answers finished, %s cut and stored incomplete, %s unsaved",
        report.finished, report.cut, report.unsaved,
    )  # fmt: skip
    return report


def reset() -> None:
    """Back to serving (tests that drain in-process)."""
    global _draining, _stopping
    _draining = _stopping = False
    _in_flight.clear()
