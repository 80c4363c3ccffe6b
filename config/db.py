"""Database connections of long-lived worker threads (the chat pipeline's pool, retrieval's second connection).

Pool threads keep their connection for the life of the process, and no request cycle closes it. After a
PostgreSQL restart every one of them holds a dead connection; without a check each would fail the next
query it runs (measured: three answers after a restart). So a connection error seen by any thread makes
every thread check its own connection once before its next use (``database_failure_noted``), and a save
that must not be lost retries across the restart (``retrying_across_restarts``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from django.db import InterfaceError, OperationalError, connection

P = ParamSpec("P")
R = TypeVar("R")
logger = logging.getLogger(__name__)
CONNECTION_ERRORS = (OperationalError, InterfaceError)
RETRY_FIRST_PAUSE_SECONDS = 0.1
RETRY_MAX_PAUSE_SECONDS = 2.0

_failures = itertools.count(1)
_failure_generation = 0  # bumped by every connection error in any thread
_checked = threading.local()  # the generation this thread's connection was last checked against


def database_failure_noted() -> None:
    """A thread met a connection error: every pooled connection is checked before its next use."""
    global _failure_generation
    _failure_generation = next(_failures)


def replace_broken_connection() -> None:
    """Close this thread's connection if it broke, so the next query opens a fresh one.

    Pings the server only after a database error on this connection, or after a connection error in any
    other thread since this one last checked: a ping before every call would cost a round trip per chat
    message step."""
    if connection.connection is None:
        _checked.generation = _failure_generation
        return
    if connection.errors_occurred or getattr(_checked, "generation", 0) != _failure_generation:
        _checked.generation = _failure_generation
        if connection.in_atomic_block:
            return  # a transaction in progress is not ours to close; its own error ends it
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()


def checked_connection(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` run on a connection checked after a connection error anywhere in the process, and noting its
    own connection errors for the other threads (for ``sync_to_async`` calls of consumers and views)."""

    @wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        replace_broken_connection()
        try:
            return fn(*args, **kwargs)
        except CONNECTION_ERRORS:
            database_failure_noted()
            raise

    return call


def retrying_across_restarts(fn: Callable[P, R], *, seconds: float) -> Callable[P, R]:
    """``fn`` (a whole transaction, run outside any other) retried on connection errors for up to
    ``seconds``, with a fresh connection each time: a database that restarts loses no write that was
    waiting for it. The caller keeps the data in memory meanwhile; after ``seconds`` the error is raised."""

    @wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        deadline = time.monotonic() + seconds
        pause = RETRY_FIRST_PAUSE_SECONDS
        attempt = 1
        while True:
            try:
                return fn(*args, **kwargs)
            except CONNECTION_ERRORS as exc:
                database_failure_noted()
                connection.close()
                if time.monotonic() + pause > deadline:
                    raise
                logger.warning(
                    "%s failed on the database (%s), attempt %s; retrying",
                    fn.__name__,
                    type(exc).__name__,
                    attempt,
                )
                time.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_PAUSE_SECONDS)
                attempt += 1

    return call
