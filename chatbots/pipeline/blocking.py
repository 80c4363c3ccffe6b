"""Running the pipeline's blocking work (ORM queries, query embedding) off the event loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async

from config.db import checked_connection

P = ParamSpec("P")
R = TypeVar("R")
_in_flight = 0
_in_flight_lock = threading.Lock()


def in_thread_pool(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run ``fn`` in the shared thread pool rather than Django's single thread-sensitive thread.

    Chat answers are independent of each other, so their database and embedding work can use every
    core instead of queueing behind one thread (measured in bench/chat_load.py). Pool threads live for
    the whole process and keep their connection; a connection that broke (or may have: a connection error
    in another thread) is checked and replaced before use.
    """

    @wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        global _in_flight
        with _in_flight_lock:
            _in_flight += 1
        try:
            return checked_connection(fn)(*args, **kwargs)
        finally:
            with _in_flight_lock:
                _in_flight -= 1

    return sync_to_async(call, thread_sensitive=False)


def wait_until_idle(timeout: float = 30.0) -> bool:
    """Block until no pipeline work runs in the pool (tests: before the database is flushed)."""
    deadline = time.monotonic() + timeout
    while _in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    return not _in_flight
